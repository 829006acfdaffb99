/**
 * The few PKCS#11 numbers the signer uses, from the OASIS PKCS#11 v2.40 base specification (pkcs11t.h), so that
 * error mapping does not depend on the binding being loaded.
 */
export const CKO_PUBLIC_KEY = 0x2;
export const CKO_PRIVATE_KEY = 0x3;
export const CKK_EC = 0x3;

export const CKA_CLASS = 0x0;
export const CKA_TOKEN = 0x1;
export const CKA_PRIVATE = 0x2;
export const CKA_LABEL = 0x3;
export const CKA_VALUE = 0x11;
export const CKA_KEY_TYPE = 0x100;
export const CKA_ID = 0x102;
export const CKA_SENSITIVE = 0x103;
export const CKA_SIGN = 0x108;
export const CKA_VERIFY = 0x10a;
export const CKA_EXTRACTABLE = 0x162;
export const CKA_LOCAL = 0x163;
export const CKA_NEVER_EXTRACTABLE = 0x164;
export const CKA_ALWAYS_SENSITIVE = 0x165;
export const CKA_EC_PARAMS = 0x180;
export const CKA_EC_POINT = 0x181;

export const CKM_EC_KEY_PAIR_GEN = 0x1040;
export const CKM_ECDSA = 0x1041;

export const CKU_USER = 1;
export const CKF_RW_SESSION = 0x2;
export const CKF_SERIAL_SESSION = 0x4;
export const CKF_OS_LOCKING_OK = 0x2;

export const CKR = {
  GENERAL_ERROR: 0x5,
  SLOT_ID_INVALID: 0x3,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  KEY_HANDLE_INVALID: 0x60,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_HANDLE_INVALID: 0xb3,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  CANT_LOCK: 0xa,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

/**
 * Return values that mean "the token, or our session with it, is gone": a USB secure element unplugged
 * (DEVICE_REMOVED, TOKEN_NOT_PRESENT), a daemon restarted or the library re-initialised (SESSION_HANDLE_INVALID,
 * CRYPTOKI_NOT_INITIALIZED, USER_NOT_LOGGED_IN), objects vanished with their store (SoftHSM answers
 * OBJECT_HANDLE_INVALID when its token folder goes away; GENERAL_ERROR from the slot list). The signer drops the
 * session and reconnects; if the reconnect fails the caller gets KEY_DEVICE_REMOVED.
 */
export const SESSION_LOST_CKR: ReadonlySet<number> = new Set([
  CKR.GENERAL_ERROR,
  CKR.SLOT_ID_INVALID,
  CKR.DEVICE_ERROR,
  CKR.DEVICE_REMOVED,
  CKR.KEY_HANDLE_INVALID,
  CKR.OBJECT_HANDLE_INVALID,
  CKR.SESSION_CLOSED,
  CKR.SESSION_HANDLE_INVALID,
  CKR.TOKEN_NOT_PRESENT,
  CKR.TOKEN_NOT_RECOGNIZED,
  CKR.USER_NOT_LOGGED_IN,
  CKR.CRYPTOKI_NOT_INITIALIZED,
]);

/** DER of the prime256v1 OID 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1), the CKA_EC_PARAMS of a P-256 key. */
export const P256_EC_PARAMS = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);
