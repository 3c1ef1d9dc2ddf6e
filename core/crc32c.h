/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of VHDX headers, region
 * tables and log entries: reflected polynomial 0x82F63B78, initial value and
 * final exclusive-or 0xFFFFFFFF. crc32c("123456789") is 0xE3069283.
 */
#ifndef IMPEX_CRC32C_H
#define IMPEX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/**
 * The CRC-32C of @len bytes at @buf, continuing @crc: pass 0 to start, or
 * the result of an earlier call to checksum data given in pieces
 * (crc32c(crc32c(0, a, n), b, m) is the CRC of a then b). Thread-safe.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
