/* sha256 for the compiled parts (_native.c, _planread.c). */
#include <openssl/evp.h>

/* Looked up once, by find_sha256() at import: OpenSSL 3 looks EVP_sha256() up on every use. */
static const EVP_MD *sha256;

static int find_sha256(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    sha256 = EVP_sha256();
#endif
    if (sha256 == NULL) PyErr_SetString(PyExc_ImportError, "OpenSSL has no sha256");
    return sha256 == NULL ? -1 : 0;
}

/* A digest as 64 lower-case hex digits and a NUL (snprintf took most of the hashing time). */
static void to_hex(const unsigned char digest[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}
