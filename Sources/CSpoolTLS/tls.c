// OpenSSL 3 through dlopen/dlsym, in the manner of .NET's opensslshim.c: no OpenSSL header, no link-time
// dependency. Every function we call is declared here by us (pointer types stand for OpenSSL's opaque ones),
// resolved once into `fn` by spool_tls_load, and called through it.
#define _GNU_SOURCE
#include "CSpoolTLS.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

typedef int (*spool_alpn_select_cb)(void *ssl, const unsigned char **out, unsigned char *outlen,
                                    const unsigned char *in, unsigned int inlen, void *arg);

// (return type, name, parameters) of every function used from libcrypto.
#define SPOOL_CRYPTO_FUNCTIONS(X) \
    X(unsigned long, OpenSSL_version_num, (void)) \
    X(const char *, OpenSSL_version, (int)) \
    X(void, ERR_clear_error, (void)) \
    X(unsigned long, ERR_get_error, (void)) \
    X(unsigned long, ERR_peek_error, (void)) \
    X(void, ERR_error_string_n, (unsigned long, char *, size_t)) \
    X(const char *, ERR_reason_error_string, (unsigned long)) \
    X(const void *, BIO_s_mem, (void)) \
    X(void *, BIO_new, (const void *)) \
    X(int, BIO_free, (void *)) \
    X(int, BIO_read, (void *, void *, int)) \
    X(int, BIO_write, (void *, const void *, int)) \
    X(long, BIO_ctrl, (void *, int, long, void *)) \
    X(const char *, X509_verify_cert_error_string, (long)) \
    X(void *, X509_get_serialNumber, (void *)) \
    X(int, X509_VERIFY_PARAM_set1_ip_asc, (void *, const char *)) \
    X(void *, ASN1_INTEGER_to_BN, (const void *, void *)) \
    X(char *, BN_bn2hex, (const void *)) \
    X(void, BN_free, (void *)) \
    X(void, CRYPTO_free, (void *, const char *, int)) \
    X(void *, EVP_PKEY_new_raw_private_key, (int, void *, const unsigned char *, size_t)) \
    X(int, EVP_PKEY_get_raw_public_key, (const void *, unsigned char *, size_t *)) \
    X(void, EVP_PKEY_free, (void *)) \
    X(void *, EVP_MD_CTX_new, (void)) \
    X(void, EVP_MD_CTX_free, (void *)) \
    X(int, EVP_DigestSignInit, (void *, void **, const void *, void *, void *)) \
    X(int, EVP_DigestSign, (void *, unsigned char *, size_t *, const unsigned char *, size_t))

// ... and from libssl.
#define SPOOL_SSL_FUNCTIONS(X) \
    X(int, OPENSSL_init_ssl, (uint64_t, const void *)) \
    X(const void *, TLS_server_method, (void)) \
    X(const void *, TLS_client_method, (void)) \
    X(void *, SSL_CTX_new, (const void *)) \
    X(void, SSL_CTX_free, (void *)) \
    X(long, SSL_CTX_ctrl, (void *, int, long, void *)) \
    X(uint64_t, SSL_CTX_set_options, (void *, uint64_t)) \
    X(int, SSL_CTX_use_certificate_chain_file, (void *, const char *)) \
    X(int, SSL_CTX_use_PrivateKey_file, (void *, const char *, int)) \
    X(int, SSL_CTX_check_private_key, (const void *)) \
    X(void *, SSL_CTX_get0_certificate, (const void *)) \
    X(void, SSL_CTX_set_verify, (void *, int, void *)) \
    X(int, SSL_CTX_set_default_verify_paths, (void *)) \
    X(int, SSL_CTX_load_verify_locations, (void *, const char *, const char *)) \
    X(void, SSL_CTX_set_alpn_select_cb, (void *, spool_alpn_select_cb, void *)) \
    X(int, SSL_CTX_set_alpn_protos, (void *, const unsigned char *, unsigned int)) \
    X(int, SSL_select_next_proto, (unsigned char **, unsigned char *, const unsigned char *, unsigned int, \
                                   const unsigned char *, unsigned int)) \
    X(void *, SSL_new, (void *)) \
    X(void, SSL_free, (void *)) \
    X(void, SSL_set_bio, (void *, void *, void *)) \
    X(void, SSL_set0_rbio, (void *, void *)) \
    X(void, SSL_set0_wbio, (void *, void *)) \
    X(void, SSL_set_accept_state, (void *)) \
    X(void, SSL_set_connect_state, (void *)) \
    X(long, SSL_ctrl, (void *, int, long, void *)) \
    X(int, SSL_set1_host, (void *, const char *)) \
    X(void, SSL_set_hostflags, (void *, unsigned int)) \
    X(void *, SSL_get0_param, (void *)) \
    X(int, SSL_do_handshake, (void *)) \
    X(int, SSL_read_ex, (void *, void *, size_t, size_t *)) \
    X(int, SSL_write_ex, (void *, const void *, size_t, size_t *)) \
    X(int, SSL_get_error, (const void *, int)) \
    X(int, SSL_shutdown, (void *)) \
    X(int, SSL_get_shutdown, (const void *)) \
    X(int, SSL_pending, (const void *)) \
    X(int, SSL_is_init_finished, (const void *)) \
    X(void, SSL_get0_alpn_selected, (const void *, const unsigned char **, unsigned int *)) \
    X(const char *, SSL_get_version, (const void *)) \
    X(long, SSL_get_verify_result, (const void *))

#define SPOOL_FIELD(ret, name, params) ret (*name) params;
struct spool_table {
    SPOOL_CRYPTO_FUNCTIONS(SPOOL_FIELD)
    SPOOL_SSL_FUNCTIONS(SPOOL_FIELD)
};
#undef SPOOL_FIELD

// The table in use, and the handles behind it. Written only under `load_lock`, before `loaded` is set; a
// caller sees it through the same lock (spool_tls_is_loaded) or through the Swift loader's lock.
static struct spool_table fn;
static void *ssl_handle, *crypto_handle;
static int loaded;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

// Documented OpenSSL 3.0 constants (crypto.h, ssl.h, bio.h, tls1.h, x509v3.h, evp.h/obj_mac.h).
#define OPENSSL_INIT_LOAD_CRYPTO_STRINGS 0x00000002ULL
#define OPENSSL_INIT_NO_ATEXIT 0x00080000ULL
#define OPENSSL_INIT_LOAD_SSL_STRINGS 0x00200000ULL
#define OPENSSL_VERSION 0
#define SSL_FILETYPE_PEM 1
#define SSL_VERIFY_PEER 0x01
#define SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define TLSEXT_NAMETYPE_host_name 0
#define SSL_CTRL_MODE 33
#define SSL_CTRL_SET_SESS_CACHE_SIZE 42
#define SSL_CTRL_SET_MIN_PROTO_VERSION 123
#define BIO_CTRL_PENDING 10
#define BIO_C_SET_BUF_MEM_EOF_RETURN 130
#define SSL_TLSEXT_ERR_OK 0
#define SSL_TLSEXT_ERR_NOACK 3
#define OPENSSL_NPN_NEGOTIATED 1
#define X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS 0x4
#define EVP_PKEY_ED25519 1087
// err.h: ERR_SYSTEM_FLAG marks a system error (errno in the low bits); otherwise lib << 23 | reason.
#define ERR_SYSTEM_FLAG 0x80000000UL
#define ERR_LIB_SYS 2
#define ERR_LIB_OFFSET 23
#define ERR_LIB_MASK 0xFF
#define ERR_REASON_MASK 0x7FFFFF

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
    if (err && errlen) snprintf(err, errlen, fmt, a, b);
}

static int resolve(void *handle, const char *name, void **slot, char *err, size_t errlen, const char *lib) {
    dlerror();
    void *p = dlsym(handle, name);
    if (p == NULL) {
        set_err(err, errlen, "%s has no symbol %s", lib, name);
        return -1;
    }
    *slot = p;
    return 0;
}

int spool_tls_load(const char *libssl_path, const char *libcrypto_path, char *err, size_t errlen) {
    const char *sslp = libssl_path ? libssl_path : "libssl.so.3";
    const char *cryptop = libcrypto_path ? libcrypto_path : "libcrypto.so.3";
    if (err && errlen) err[0] = 0;
    pthread_mutex_lock(&load_lock);
    if (loaded) {
        // Already loaded: fine if this names the same library (RTLD_NOLOAD finds it among the mapped ones).
        void *h = dlopen(sslp, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        int same = h == ssl_handle;
        if (h) dlclose(h);
        pthread_mutex_unlock(&load_lock);
        if (same) return 0;
        set_err(err, errlen, "another OpenSSL is already loaded in this process; cannot also load %s%s", sslp, "");
        return -1;
    }
    struct spool_table t;
    memset(&t, 0, sizeof t);
    // libcrypto first, so that a libcrypto named explicitly is the one libssl's DT_NEEDED (matched by soname)
    // binds to.
    void *hc = dlopen(cryptop, RTLD_NOW | RTLD_LOCAL);
    if (hc == NULL) {
        const char *e = dlerror();
        set_err(err, errlen, "%s", e ? e : cryptop, "");
        pthread_mutex_unlock(&load_lock);
        return -1;
    }
    if (resolve(hc, "OpenSSL_version_num", (void **)&t.OpenSSL_version_num, err, errlen, cryptop) != 0) goto fail_crypto;
    unsigned long v = t.OpenSSL_version_num();
    if (v < 0x30000000UL) {
        char found[64];
        snprintf(found, sizeof found, "0x%08lx", v);
        set_err(err, errlen, "%s is OpenSSL %s; version 3.0.0 or later is needed", cryptop, found);
        goto fail_crypto;
    }
    void *hs = dlopen(sslp, RTLD_NOW | RTLD_LOCAL);
    if (hs == NULL) {
        const char *e = dlerror();
        set_err(err, errlen, "%s", e ? e : sslp, "");
        goto fail_crypto;
    }
#define SPOOL_RESOLVE_CRYPTO(ret, name, params) \
    if (resolve(hc, #name, (void **)&t.name, err, errlen, cryptop) != 0) goto fail_both;
#define SPOOL_RESOLVE_SSL(ret, name, params) \
    if (resolve(hs, #name, (void **)&t.name, err, errlen, sslp) != 0) goto fail_both;
    SPOOL_CRYPTO_FUNCTIONS(SPOOL_RESOLVE_CRYPTO)
    SPOOL_SSL_FUNCTIONS(SPOOL_RESOLVE_SSL)
#undef SPOOL_RESOLVE_CRYPTO
#undef SPOOL_RESOLVE_SSL
    // NO_ATEXIT: OpenSSL's exit-time cleanup would free state that threads still running at exit may use
    // (the crash .NET works around the same way). The process exits; the OS takes the memory back.
    if (t.OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL) != 1) {
        set_err(err, errlen, "OPENSSL_init_ssl failed in %s%s", sslp, "");
        goto fail_both;
    }
    fn = t;
    ssl_handle = hs;
    crypto_handle = hc;
    loaded = 1;
    pthread_mutex_unlock(&load_lock);
    return 0;
fail_both:
    dlclose(hs);
fail_crypto:
    dlclose(hc);
    pthread_mutex_unlock(&load_lock);
    return -1;
}

int spool_tls_is_loaded(void) {
    pthread_mutex_lock(&load_lock);
    int l = loaded;
    pthread_mutex_unlock(&load_lock);
    return l;
}

const char *spool_tls_version_text(void) { return fn.OpenSSL_version(OPENSSL_VERSION); }
unsigned long spool_tls_version_num(void) { return fn.OpenSSL_version_num(); }

// MARK: errors

void spool_tls_err_clear(void) { fn.ERR_clear_error(); }
unsigned long spool_tls_err_get(void) { return fn.ERR_get_error(); }
unsigned long spool_tls_err_peek(void) { return fn.ERR_peek_error(); }
void spool_tls_err_string(unsigned long e, char *buf, size_t len) { fn.ERR_error_string_n(e, buf, len); }
const char *spool_tls_err_reason_text(unsigned long e) { return fn.ERR_reason_error_string(e); }

int spool_tls_err_lib(unsigned long e) {
    if (e & ERR_SYSTEM_FLAG) return ERR_LIB_SYS;
    return (int)((e >> ERR_LIB_OFFSET) & ERR_LIB_MASK);
}

int spool_tls_err_reason(unsigned long e) {
    if (e & ERR_SYSTEM_FLAG) return (int)(e & ~ERR_SYSTEM_FLAG);
    return (int)(e & ERR_REASON_MASK);
}

unsigned long spool_tls_err_drain(char *buf, size_t len) {
    if (buf && len) buf[0] = 0;
    unsigned long first = fn.ERR_get_error();
    if (first == 0) return 0;
    const char *r = fn.ERR_reason_error_string(first);
    if (buf && len) {
        if (r) snprintf(buf, len, "%s", r);
        else fn.ERR_error_string_n(first, buf, len);
    }
    while (fn.ERR_get_error() != 0) {}
    return first;
}

// MARK: contexts

spool_ssl_ctx *spool_tls_ctx_new(int server) {
    return (spool_ssl_ctx *)fn.SSL_CTX_new(server ? fn.TLS_server_method() : fn.TLS_client_method());
}

void spool_tls_ctx_free(spool_ssl_ctx *ctx) { fn.SSL_CTX_free(ctx); }
uint64_t spool_tls_ctx_set_options(spool_ssl_ctx *ctx, uint64_t options) { return fn.SSL_CTX_set_options(ctx, options); }
long spool_tls_ctx_set_mode(spool_ssl_ctx *ctx, long mode) { return fn.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, mode, NULL); }

int spool_tls_ctx_set_min_proto_version(spool_ssl_ctx *ctx, int version) {
    return (int)fn.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, version, NULL);
}

long spool_tls_ctx_set_session_cache_size(spool_ssl_ctx *ctx, long size) {
    return fn.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_SIZE, size, NULL);
}

int spool_tls_ctx_use_certificate_chain_file(spool_ssl_ctx *ctx, const char *path) {
    return fn.SSL_CTX_use_certificate_chain_file(ctx, path);
}

int spool_tls_ctx_use_private_key_file(spool_ssl_ctx *ctx, const char *path) {
    return fn.SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
}

int spool_tls_ctx_check_private_key(spool_ssl_ctx *ctx) { return fn.SSL_CTX_check_private_key(ctx); }
void spool_tls_ctx_verify_peer(spool_ssl_ctx *ctx) { fn.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); }
int spool_tls_ctx_set_default_verify_paths(spool_ssl_ctx *ctx) { return fn.SSL_CTX_set_default_verify_paths(ctx); }
int spool_tls_ctx_load_verify_file(spool_ssl_ctx *ctx, const char *ca_file) {
    return fn.SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
}

static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static int select_http11(void *ssl, const unsigned char **out, unsigned char *outlen,
                         const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    unsigned char *selected = NULL;
    unsigned char selected_len = 0;
    if (fn.SSL_select_next_proto(&selected, &selected_len, http11, sizeof http11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        *outlen = selected_len;
        return SSL_TLSEXT_ERR_OK;
    }
    // No overlap: carry on without ALPN rather than failing the handshake (see the header).
    return SSL_TLSEXT_ERR_NOACK;
}

void spool_tls_ctx_select_http11(spool_ssl_ctx *ctx) { fn.SSL_CTX_set_alpn_select_cb(ctx, select_http11, NULL); }

int spool_tls_ctx_set_alpn_protos(spool_ssl_ctx *ctx, const uint8_t *wire, unsigned len) {
    return fn.SSL_CTX_set_alpn_protos(ctx, wire, len) == 0;
}

int spool_tls_ctx_certificate_serial(spool_ssl_ctx *ctx, char *buf, size_t len) {
    void *cert = fn.SSL_CTX_get0_certificate(ctx);
    if (cert == NULL) return -1;
    void *serial = fn.X509_get_serialNumber(cert);  // owned by the certificate
    if (serial == NULL) return -1;
    void *bn = fn.ASN1_INTEGER_to_BN(serial, NULL);
    if (bn == NULL) return -1;
    char *hex = fn.BN_bn2hex(bn);
    fn.BN_free(bn);
    if (hex == NULL) return -1;
    int r = -1;
    if (strlen(hex) < len) {
        strcpy(buf, hex);
        r = 0;
    }
    fn.CRYPTO_free(hex, __FILE__, __LINE__);  // OPENSSL_free is a macro over CRYPTO_free
    return r;
}

// MARK: sessions

spool_ssl *spool_tls_new(spool_ssl_ctx *ctx, int server, spool_bio **rbio, spool_bio **wbio) {
    void *ssl = fn.SSL_new(ctx);
    if (ssl == NULL) return NULL;
    void *r = fn.BIO_new(fn.BIO_s_mem());
    void *w = fn.BIO_new(fn.BIO_s_mem());
    if (r == NULL || w == NULL) {
        if (r) fn.BIO_free(r);
        if (w) fn.BIO_free(w);
        fn.SSL_free(ssl);
        return NULL;
    }
    fn.SSL_set_bio(ssl, r, w);  // the session owns both from here
    if (server) fn.SSL_set_accept_state(ssl);
    else fn.SSL_set_connect_state(ssl);
    *rbio = (spool_bio *)r;
    *wbio = (spool_bio *)w;
    return (spool_ssl *)ssl;
}

void spool_tls_free(spool_ssl *ssl) { fn.SSL_free(ssl); }

int spool_tls_set_peer_name(spool_ssl *ssl, const char *name) {
    unsigned char addr[16];
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
        return fn.X509_VERIFY_PARAM_set1_ip_asc(fn.SSL_get0_param(ssl), name) == 1 ? 2 : 0;
    }
    if (fn.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)name) != 1) return 0;
    fn.SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return fn.SSL_set1_host(ssl, name) == 1 ? 1 : 0;
}

int spool_tls_do_handshake(spool_ssl *ssl) { return fn.SSL_do_handshake(ssl); }
int spool_tls_read(spool_ssl *ssl, void *buf, size_t len, size_t *done) { return fn.SSL_read_ex(ssl, buf, len, done); }
int spool_tls_write(spool_ssl *ssl, const void *buf, size_t len, size_t *done) { return fn.SSL_write_ex(ssl, buf, len, done); }
int spool_tls_get_error(spool_ssl *ssl, int ret) { return fn.SSL_get_error(ssl, ret); }
int spool_tls_shutdown(spool_ssl *ssl) { return fn.SSL_shutdown(ssl); }
int spool_tls_get_shutdown(spool_ssl *ssl) { return fn.SSL_get_shutdown(ssl); }
int spool_tls_pending(spool_ssl *ssl) { return fn.SSL_pending(ssl); }
int spool_tls_is_init_finished(spool_ssl *ssl) { return fn.SSL_is_init_finished(ssl); }

void spool_tls_alpn_selected(spool_ssl *ssl, const uint8_t **data, unsigned *len) {
    const unsigned char *d = NULL;
    unsigned int l = 0;
    fn.SSL_get0_alpn_selected(ssl, &d, &l);
    *data = d;
    *len = d ? l : 0;
}

const char *spool_tls_protocol_version(spool_ssl *ssl) { return fn.SSL_get_version(ssl); }
long spool_tls_verify_result(spool_ssl *ssl) { return fn.SSL_get_verify_result(ssl); }
const char *spool_tls_verify_error_text(long result) { return fn.X509_verify_cert_error_string(result); }

spool_bio *spool_tls_renew_rbio(spool_ssl *ssl) {
    void *b = fn.BIO_new(fn.BIO_s_mem());
    if (b) fn.SSL_set0_rbio(ssl, b);
    return (spool_bio *)b;
}

spool_bio *spool_tls_renew_wbio(spool_ssl *ssl) {
    void *b = fn.BIO_new(fn.BIO_s_mem());
    if (b) fn.SSL_set0_wbio(ssl, b);
    return (spool_bio *)b;
}

// MARK: BIOs

int spool_tls_bio_write(spool_bio *bio, const void *buf, int len) { return fn.BIO_write(bio, buf, len); }
int spool_tls_bio_read(spool_bio *bio, void *buf, int len) { return fn.BIO_read(bio, buf, len); }
long spool_tls_bio_pending(spool_bio *bio) { return fn.BIO_ctrl(bio, BIO_CTRL_PENDING, 0, NULL); }
void spool_tls_bio_set_eof(spool_bio *bio) { fn.BIO_ctrl(bio, BIO_C_SET_BUF_MEM_EOF_RETURN, 0, NULL); }

// MARK: Ed25519

static void *ed25519_key(const uint8_t *seed32) {
    if (!spool_tls_is_loaded()) return NULL;
    return fn.EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed32, 32);
}

int spool_tls_ed25519_sign(const uint8_t *seed32, const uint8_t *msg, size_t len, uint8_t *sig64) {
    static const uint8_t empty = 0;
    if (msg == NULL) msg = &empty;  /* an empty message may come without a buffer */
    void *key = ed25519_key(seed32);
    if (key == NULL) return -1;
    int r = -1;
    void *md = fn.EVP_MD_CTX_new();
    size_t siglen = 64;
    // Ed25519 is one-shot and hashes internally: no digest (NULL) and EVP_DigestSign, not Update/Final.
    if (md && fn.EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
        fn.EVP_DigestSign(md, sig64, &siglen, msg, len) == 1 && siglen == 64) {
        r = 0;
    }
    if (md) fn.EVP_MD_CTX_free(md);
    fn.EVP_PKEY_free(key);
    return r;
}

int spool_tls_ed25519_public(const uint8_t *seed32, uint8_t *pub32) {
    void *key = ed25519_key(seed32);
    if (key == NULL) return -1;
    size_t l = 32;
    int r = fn.EVP_PKEY_get_raw_public_key(key, pub32, &l) == 1 && l == 32 ? 0 : -1;
    fn.EVP_PKEY_free(key);
    return r;
}
