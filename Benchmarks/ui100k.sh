#!/bin/bash
# spool ui on a spool of N items (default 100,000; 30% done, 10% failed), timed with curl against the real
# process: the first page (cold scan), the cached page, the page while background rescans run, a list page,
# the JSON API. Usage: Benchmarks/ui100k.sh SPOOL_BIN TESTKIT_BIN [N]
set -e
bin=$1; tk=$2; n=${3:-100000}
d=$(mktemp -d)/s
$tk fill $d b $n 64 >/dev/null
# Spread over the states by rename (as complete and fail end), no consumer run needed.
cd $d/new && ls | awk 'NR%10==1' | xargs -r mv -t ../failed && ls | awk 'NR%9<3' | xargs -r mv -t ../done && cd - >/dev/null
$bin --dir $d stats
log=$(mktemp); $bin --dir $d ui --listen 127.0.0.1:0 >$log 2>/dev/null & pid=$!
trap "kill $pid" EXIT
for i in $(seq 50); do grep -q listening $log && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http[^ ]*\) .*/\1/p' $log)
t() { curl -s -o /dev/null -H 'Host: 127.0.0.1' -w '%{time_total}' "$url$1"; }
echo "first GET / (cold scan):       $(t /) s"
echo "GET / cached:                  $(t /) s"
sleep 2.1
echo "GET / scan expired (served old, rescan in background): $(t /) s"
w=0; for i in $(seq 20); do x=$(t /); w=$(echo "if ($x>$w) $x else $w" | bc); sleep 0.25; done
echo "GET / every 250 ms for 5 s, worst: $w s"
echo "GET /list?state=new&page=300:  $(t '/list?state=new&page=300') s"
echo "GET /api/items?limit=100:      $(t '/api/items?state=done&limit=100') s"
echo "GET /api/stats:                $(t /api/stats) s"
csrf=$(curl -s -H 'Host: 127.0.0.1' "$url/" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' | head -1)
host=${url#http://}
r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Host: $host" -H "Origin: $url" --data "csrf=$csrf" "$url/actions/retry-all")
echo "POST /actions/retry-all (10% of the items): $r s"
echo "GET / after it (waits for a rescan): $(t /) s"
$bin --dir $d stats | head -4
