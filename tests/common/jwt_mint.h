/*
 * Copyright (C) Data Loom
 */


#ifndef _LOOM_JWT_MINT_H_INCLUDED_
#define _LOOM_JWT_MINT_H_INCLUDED_


/*
 * Makes compact JWS tokens from any header and payload text, with OpenSSL
 * alone (not libjwt), so that the tests can write headers no library
 * would: "alg" in lower case, duplicates, "crit", a wrong "typ".
 *
 *     jwt_mint(buf, size, "HS256", secret, len, header, payload)
 *     jwt_mint(buf, size, "RS256", pem_private_key, len, header, payload)
 *     jwt_mint(buf, size, "ES256", pem_private_key, len, header, payload)
 *     jwt_mint(buf, size, "none", NULL, 0, header, payload)
 *
 * Returns the token's length, 0 on failure.
 */


#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>


static size_t
jwt_mint_b64(char *out, const unsigned char *in, size_t len)
{
    static const char  a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t    i, n;
    uint32_t  v;

    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
        out[n++] = a[v & 63];
    }

    if (len - i == 1) {
        v = in[i] << 16;
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = (in[i] << 16) | (in[i + 1] << 8);
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
    }

    return n;
}


static size_t
jwt_mint_sign(const char *alg, const unsigned char *key, size_t klen,
    const unsigned char *in, size_t len, unsigned char *sig)
{
    BIO            *bio;
    size_t          slen;
    EVP_PKEY       *pkey;
    ECDSA_SIG      *es;
    EVP_MD_CTX     *md;
    unsigned int    hlen;
    const BIGNUM   *r, *s;
    unsigned char   der[256];
    const unsigned char  *p;

    if (strcmp(alg, "HS256") == 0) {
        if (HMAC(EVP_sha256(), key, (int) klen, in, len, sig, &hlen)
            == NULL)
        {
            return 0;
        }

        return hlen;
    }

    bio = BIO_new_mem_buf(key, (int) klen);
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        return 0;
    }

    md = EVP_MD_CTX_new();
    slen = sizeof(der);

    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1
        || EVP_DigestSign(md, der, &slen, in, len) != 1)
    {
        slen = 0;
    }

    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);

    if (slen == 0 || strcmp(alg, "RS256") == 0) {
        memcpy(sig, der, slen);
        return slen;
    }

    /* ES256: DER to the JOSE form, R and S of 32 bytes each */

    p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long) slen);
    if (es == NULL) {
        return 0;
    }

    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);

    return 64;
}


static size_t
jwt_mint(char *out, size_t size, const char *alg, const unsigned char *key,
    size_t klen, const char *header, const char *payload)
{
    size_t         n, hl, pl, sl;
    unsigned char  sig[512];

    hl = strlen(header);
    pl = strlen(payload);

    if ((hl + pl + sizeof(sig)) * 4 / 3 + 8 > size) {
        return 0;
    }

    n = jwt_mint_b64(out, (const unsigned char *) header, hl);
    out[n++] = '.';
    n += jwt_mint_b64(out + n, (const unsigned char *) payload, pl);

    if (strcmp(alg, "none") == 0) {
        out[n++] = '.';
        out[n] = '\0';
        return n;
    }

    sl = jwt_mint_sign(alg, key, klen, (unsigned char *) out, n, sig);
    if (sl == 0) {
        return 0;
    }

    out[n++] = '.';
    n += jwt_mint_b64(out + n, sig, sl);
    out[n] = '\0';

    return n;
}


#endif /* _LOOM_JWT_MINT_H_INCLUDED_ */
