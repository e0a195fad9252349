// OpenSSL 3, opened at run time. Nothing here includes an OpenSSL header or links libssl: `spool_tls_load`
// dlopens libssl.so.3 / libcrypto.so.3, resolves every function this module calls into one table, and the
// wrappers below call through it. A machine without OpenSSL builds and runs spool; only TLS fails, with the
// loader's message. The types are opaque names of our own; the constants are the documented OpenSSL 3.0
// values (copied from the 3.0 headers, which are read, never included).
#ifndef CSPOOLTLS_H
#define CSPOOLTLS_H
#include <stddef.h>
#include <stdint.h>

typedef struct spool_ssl_ctx spool_ssl_ctx;  // SSL_CTX
typedef struct spool_ssl spool_ssl;          // SSL
typedef struct spool_bio spool_bio;          // BIO

// MARK: loading

/// dlopens libcrypto then libssl (NULL: the sonames "libcrypto.so.3" / "libssl.so.3"), RTLD_NOW|RTLD_LOCAL,
/// checks OpenSSL_version_num() >= 3.0.0, resolves every symbol of the table and calls OPENSSL_init_ssl with
/// OPENSSL_INIT_NO_ATEXIT. All or nothing: on failure nothing stays loaded and `err` names the cause (the
/// dlerror text, the version found, or the first missing symbol). Once a library is loaded, a later call
/// succeeds only if `libssl_path` names that same library (already mapped); another one is refused.
/// Thread-safe. Returns 0 or -1.
int spool_tls_load(const char *libssl_path, const char *libcrypto_path, char *err, size_t errlen);
/// 1 once `spool_tls_load` has succeeded.
int spool_tls_is_loaded(void);
/// OpenSSL_version(OPENSSL_VERSION), e.g. "OpenSSL 3.0.19 27 Jan 2026".
const char *spool_tls_version_text(void);
unsigned long spool_tls_version_num(void);

// MARK: the per-thread error queue

void spool_tls_err_clear(void);
unsigned long spool_tls_err_get(void);
unsigned long spool_tls_err_peek(void);
/// ERR_error_string_n: "error:0A000126:SSL routines::unexpected eof while reading".
void spool_tls_err_string(unsigned long e, char *buf, size_t len);
/// ERR_reason_error_string: "unexpected eof while reading"; NULL when OpenSSL has no text for it.
const char *spool_tls_err_reason_text(unsigned long e);
/// ERR_GET_LIB / ERR_GET_REASON (static inline functions in 3.0, so computed here from the documented layout).
int spool_tls_err_lib(unsigned long e);
int spool_tls_err_reason(unsigned long e);
/// Takes every error off the queue and writes the reason text of the first (oldest, usually the root cause)
/// into `buf`. Returns that error's code, 0 when the queue was empty (then `buf` is "").
unsigned long spool_tls_err_drain(char *buf, size_t len);

// Error codes we look for (sslerr.h, err.h).
#define SPOOL_ERR_LIB_SSL 20
#define SPOOL_SSL_R_CERTIFICATE_VERIFY_FAILED 134
#define SPOOL_SSL_R_UNEXPECTED_EOF_WHILE_READING 294
#define SPOOL_ERR_LIB_PEM 9
#define SPOOL_PEM_R_NO_START_LINE 108
#define SPOOL_ERR_LIB_X509 11
#define SPOOL_X509_R_KEY_TYPE_MISMATCH 115
#define SPOOL_X509_R_KEY_VALUES_MISMATCH 116
/* ERR_R_UNSUPPORTED: a reason common to every library, 268 | ERR_RFLAG_COMMON (2 << 18) = 524556, what OpenSSL 3's decoders say when
   nothing in a file decodes. */
#define SPOOL_ERR_R_UNSUPPORTED 524556

// MARK: contexts (SSL_CTX)

spool_ssl_ctx *spool_tls_ctx_new(int server);
void spool_tls_ctx_free(spool_ssl_ctx *ctx);
uint64_t spool_tls_ctx_set_options(spool_ssl_ctx *ctx, uint64_t options);
/// SSL_CTX_set_mode (a macro over SSL_CTX_ctrl(SSL_CTRL_MODE)); ORs the bits in.
long spool_tls_ctx_set_mode(spool_ssl_ctx *ctx, long mode);
/// SSL_CTX_set_min_proto_version (a macro over SSL_CTX_ctrl(SSL_CTRL_SET_MIN_PROTO_VERSION)). 1 on success.
int spool_tls_ctx_set_min_proto_version(spool_ssl_ctx *ctx, int version);
/// SSL_CTX_sess_set_cache_size (a macro over SSL_CTX_ctrl(SSL_CTRL_SET_SESS_CACHE_SIZE)).
long spool_tls_ctx_set_session_cache_size(spool_ssl_ctx *ctx, long size);
int spool_tls_ctx_use_certificate_chain_file(spool_ssl_ctx *ctx, const char *path);
int spool_tls_ctx_use_private_key_file(spool_ssl_ctx *ctx, const char *path);
int spool_tls_ctx_check_private_key(spool_ssl_ctx *ctx);
/// SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL).
void spool_tls_ctx_verify_peer(spool_ssl_ctx *ctx);
int spool_tls_ctx_set_default_verify_paths(spool_ssl_ctx *ctx);
int spool_tls_ctx_load_verify_file(spool_ssl_ctx *ctx, const char *ca_file);
/// Installs the server's ALPN callback: selects "http/1.1" when the client offers it; when the client offers
/// only other protocols (h2 alone, say) the handshake goes on without ALPN (SSL_TLSEXT_ERR_NOACK) instead of
/// failing with no_application_protocol: an HTTP/1.1 server can still serve a client that will find out from
/// the response, and refusing the handshake would only turn that into an opaque TLS alert.
void spool_tls_ctx_select_http11(spool_ssl_ctx *ctx);
/// SSL_CTX_set_alpn_protos (wire format: length-prefixed names). 1 on success (OpenSSL itself returns 0).
int spool_tls_ctx_set_alpn_protos(spool_ssl_ctx *ctx, const uint8_t *wire, unsigned len);
/// The serial number of the context's certificate (the leaf) in hex, as `openssl x509 -serial` prints it.
/// Returns 0, or -1 when there is no certificate or `len` is too small.
int spool_tls_ctx_certificate_serial(spool_ssl_ctx *ctx, char *buf, size_t len);

// SSL_CTX_set_options bits (ssl.h, SSL_OP_BIT(n) = 1 << n).
#define SPOOL_SSL_OP_NO_COMPRESSION 0x20000ULL
#define SPOOL_SSL_OP_CIPHER_SERVER_PREFERENCE 0x400000ULL
#define SPOOL_SSL_OP_NO_RENEGOTIATION 0x40000000ULL
// SSL_CTX_set_mode bits.
#define SPOOL_SSL_MODE_ENABLE_PARTIAL_WRITE 0x1L
#define SPOOL_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER 0x2L
#define SPOOL_SSL_MODE_RELEASE_BUFFERS 0x10L
#define SPOOL_TLS1_2_VERSION 0x0303

// MARK: sessions (SSL) over two memory BIOs

/// A session in accept (server) or connect (client) state, reading ciphertext from a fresh memory BIO and
/// writing it to another. Everything is freed on failure (NULL). `rbio`/`wbio` stay owned by the session.
spool_ssl *spool_tls_new(spool_ssl_ctx *ctx, int server, spool_bio **rbio, spool_bio **wbio);
/// SSL_free: frees the session and both BIOs.
void spool_tls_free(spool_ssl *ssl);
/// Names the server a client expects. An IP literal (IPv4 or IPv6, no brackets) is checked against the
/// certificate's IP addresses (X509_VERIFY_PARAM_set1_ip_asc) and sends no SNI (RFC 6066 section 3 allows only
/// host names there); anything else is sent as SNI (SSL_set_tlsext_host_name, a macro over SSL_ctrl) and checked
/// as a DNS name (SSL_set1_host, without partial wildcards). Returns 1 for a name, 2 for an IP literal, 0 on error.
int spool_tls_set_peer_name(spool_ssl *ssl, const char *name);
int spool_tls_do_handshake(spool_ssl *ssl);
int spool_tls_read(spool_ssl *ssl, void *buf, size_t len, size_t *done);
int spool_tls_write(spool_ssl *ssl, const void *buf, size_t len, size_t *done);
int spool_tls_get_error(spool_ssl *ssl, int ret);
int spool_tls_shutdown(spool_ssl *ssl);
int spool_tls_get_shutdown(spool_ssl *ssl);
int spool_tls_pending(spool_ssl *ssl);
int spool_tls_is_init_finished(spool_ssl *ssl);
/// The ALPN protocol selected (not NUL-terminated; len 0 if none).
void spool_tls_alpn_selected(spool_ssl *ssl, const uint8_t **data, unsigned *len);
/// "TLSv1.3", "TLSv1.2", ...
const char *spool_tls_protocol_version(spool_ssl *ssl);
/// SSL_get_verify_result (X509_V_OK = 0).
long spool_tls_verify_result(spool_ssl *ssl);
/// X509_verify_cert_error_string: "hostname mismatch", "certificate has expired", ...
const char *spool_tls_verify_error_text(long result);
/// Replaces the session's read / write BIO with a fresh empty memory BIO (SSL_set0_rbio / SSL_set0_wbio free
/// the old one): how an idle connection gives back a buffer that grew during a large transfer. Call only when
/// the BIO is empty. Returns the new BIO, NULL if none could be made (the old one stays).
spool_bio *spool_tls_renew_rbio(spool_ssl *ssl);
spool_bio *spool_tls_renew_wbio(spool_ssl *ssl);

#define SPOOL_SSL_ERROR_NONE 0
#define SPOOL_SSL_ERROR_SSL 1
#define SPOOL_SSL_ERROR_WANT_READ 2
#define SPOOL_SSL_ERROR_WANT_WRITE 3
#define SPOOL_SSL_ERROR_SYSCALL 5
#define SPOOL_SSL_ERROR_ZERO_RETURN 6
#define SPOOL_SSL_SENT_SHUTDOWN 1
#define SPOOL_SSL_RECEIVED_SHUTDOWN 2

// MARK: memory BIOs

int spool_tls_bio_write(spool_bio *bio, const void *buf, int len);
int spool_tls_bio_read(spool_bio *bio, void *buf, int len);
/// BIO_pending (a macro over BIO_ctrl(BIO_CTRL_PENDING)).
long spool_tls_bio_pending(spool_bio *bio);
/// BIO_set_mem_eof_return(bio, 0) (a macro over BIO_ctrl(BIO_C_SET_BUF_MEM_EOF_RETURN)): once empty, the BIO
/// reads as end of file instead of "retry", so OpenSSL sees the transport's EOF.
void spool_tls_bio_set_eof(spool_bio *bio);

// MARK: Ed25519 (for NATS NKEYs)

/// Signs `msg` with the Ed25519 private key whose 32-byte seed is `seed32` (RFC 8032); writes 64 bytes.
/// Returns 0 or -1 (library not loaded, or OpenSSL failed: see the error queue).
int spool_tls_ed25519_sign(const uint8_t *seed32, const uint8_t *msg, size_t len, uint8_t *sig64);
/// The 32-byte public key of the seed. Returns 0 or -1.
int spool_tls_ed25519_public(const uint8_t *seed32, uint8_t *pub32);

#endif
