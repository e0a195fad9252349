// The peer: the JSON2Video guide's webhook receiver made durable, with Node's built-in http module.
// Per request: parse JSON, take movie.project, write the raw body to tmp/, fsync, link into new/ (EEXIST =
// duplicate), fsync new/, then answer 200. Usage: node node-peer.js DIR PORT
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const [dir, port] = [process.argv[2], Number(process.argv[3])];
for (const d of ['tmp', 'new']) fs.mkdirSync(path.join(dir, d), { recursive: true, mode: 0o700 });
const newDir = fs.openSync(path.join(dir, 'new'), 'r');
let seq = 0;
function fsyncP(fd) { return new Promise((res, rej) => fs.fsync(fd, e => (e ? rej(e) : res()))); }
function writeFileDurable(file, body) {
  return new Promise((res, rej) => fs.open(file, 'wx', 0o600, (e, fd) => {
    if (e) return rej(e);
    fs.write(fd, body, 0, body.length, 0, (e2) => {
      if (e2) return fs.close(fd, () => rej(e2));
      fs.fsync(fd, (e3) => fs.close(fd, () => (e3 ? rej(e3) : res())));
    });
  }));
}
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    let key;
    try { const j = JSON.parse(body); key = (j.movie && j.movie.project) || j.project; } catch { key = undefined; }
    if (typeof key !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(key)) { res.writeHead(422); return res.end('{"error":"no key"}'); }
    const tmp = path.join(dir, 'tmp', `${process.pid}-${seq++}`);
    try {
      await writeFileDurable(tmp, body);
      let status = 'accepted';
      try { fs.linkSync(tmp, path.join(dir, 'new', key)); } catch (e) { if (e.code === 'EEXIST') status = 'duplicate'; else throw e; }
      fs.unlinkSync(tmp);
      await fsyncP(newDir);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status, key }));
    } catch (e) {
      res.writeHead(503); res.end('{"error":"storage"}');
    }
  });
}).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`));
