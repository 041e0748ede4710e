// DNS wire constants used by raced (RFC 1035, RFC 6891).

export const HEADER_LEN = 12;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended RCODE 16, carried as 1 in the OPT TTL's high byte. */
  BADVERS: 16,
} as const;

export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  16: 'BADVERS',
};

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

export const Type = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  AAAA: 28,
  OPT: 41,
} as const;

export const CLASS_IN = 1;

// Header flag bits in the 16-bit flags word (offset 2).
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_AD = 0x0020;
export const FLAG_CD = 0x0010;
export const OPCODE_MASK = 0x7800;

/** DO bit in the OPT record's TTL field (RFC 3225). */
export const EDNS_DO = 0x8000;

/** Classic limit for a UDP reply to a client without EDNS (RFC 1035 §4.2.1). */
export const UDP_CLASSIC_MAX = 512;
