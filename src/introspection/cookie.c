/* SPDX-License-Identifier: MIT */
/*
 * cookie.c - the default cookie hash, SHA-1 of the key as QEMU and libkvmi
 * use it, computed by OpenSSL's libcrypto.
 */
#include "introspection.h"

#include <errno.h>
#include <openssl/evp.h>

int kvmi_srv_cookie_sha1(const void *key, size_t key_len, uint8_t out[KVMI_COOKIE_HASH_SIZE])
{
	unsigned int len = 0;

	if (!EVP_Digest(key, key_len, out, &len, EVP_sha1(), NULL) || len != KVMI_COOKIE_HASH_SIZE)
		return -EIO;
	return 0;
}
