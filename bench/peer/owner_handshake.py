"""The guest owner's handshake written directly on `cryptography` (the Python peer of bench/owner.ts).

Same work as sevkit's owner: verify PDH <- PEK <- OCA, PEK <- CEK <- ASK <- ARK, create a launch session
(P-384 GODH, SP 800-108 KDF, wrap, MACs), check the measurement over the firmware, build the aleph-layout
secret. Written from the SEV API spec, not from sevkit's code.

  owner_handshake.py session DIR                      -> JSON godh/session (base64), tek/tik (hex)
  owner_handshake.py secret DIR TEK TIK MEASUREMENT   -> JSON header/payload (hex), after checking MEASUREMENT
  owner_handshake.py bench DIR ROUNDS                 -> JSON op_ms/prim_ms (medians, interleaved)
"""
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CERT = 0x824
POLICY = 1
API = (1, 55, 21)
DISK_GUID = uuid.UUID("736869e5-84f0-4973-92ec-06879ce3da0b").bytes_le
TABLE_GUID = uuid.UUID("1e74f542-71dd-4d66-963e-ef4287ff173b").bytes_le


def le_int(b):
    return int.from_bytes(b, "little")


def ec_key(cert):
    x, y = le_int(cert[0x14:0x14 + 48]), le_int(cert[0x5C:0x5C + 48])
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP384R1()).public_key()


def ec_sig(cert, slot):
    off = 0x41C if slot == 0 else 0x624
    return utils.encode_dss_signature(le_int(cert[off:off + 48]), le_int(cert[off + 72:off + 120]))


def rsa_key(n_le, e_le):
    return rsa.RSAPublicNumbers(le_int(e_le), le_int(n_le)).public_key()


def parse_ca(buf):
    size = struct.unpack_from("<I", buf, 0x3C)[0] // 8
    return {"e": buf[0x40:0x40 + size], "n": buf[0x40 + size:0x40 + 2 * size], "body": buf[:0x40 + 2 * size],
            "sig": buf[0x40 + 2 * size:0x40 + 3 * size]}


def pss(size):
    h = hashes.SHA256() if size == 256 else hashes.SHA384()
    return padding.PSS(mgf=padding.MGF1(h), salt_length=32 if size == 256 else 48), h


def verify_chain(chain, ca):
    pdh, pek, oca, cek = (chain[i * CERT:(i + 1) * CERT] for i in range(4))
    ask, ark = parse_ca(ca[:len(ca) // 2]), parse_ca(ca[len(ca) // 2:])
    pek_k, oca_k, cek_k = ec_key(pek), ec_key(oca), ec_key(cek)
    ec_key(pdh)  # the PDH's point is validated when it is loaded
    sha = ec.ECDSA(hashes.SHA256())
    pek_k.verify(ec_sig(pdh, 0), pdh[:0x414], sha)
    oca_k.verify(ec_sig(pek, 0), pek[:0x414], sha)
    oca_k.verify(ec_sig(oca, 0), oca[:0x414], sha)
    cek_k.verify(ec_sig(pek, 1), pek[:0x414], sha)
    ask_k, ark_k = rsa_key(ask["n"], ask["e"]), rsa_key(ark["n"], ark["e"])
    pad, h = pss(len(ask["n"]))
    ask_k.verify(cek[0x41C:0x41C + 512][::-1], cek[:0x414], pad, h)
    ark_k.verify(ask["sig"][::-1], ask["body"], pad, h)
    ark_k.verify(ark["sig"][::-1], ark["body"], pad, h)
    return pdh


def kdf(key, label, context=b""):
    return hmac.new(key, struct.pack("<I", 1) + label + b"\0" + context + struct.pack("<I", 128), hashlib.sha256).digest()[:16]


def ctr(key, iv, data):
    e = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return e.update(data) + e.finalize()


def create_session(pdh):
    peer = ec_key(pdh)
    priv = ec.generate_private_key(ec.SECP384R1())
    z = priv.exchange(ec.ECDH(), peer)
    tek, tik, nonce, iv = (os.urandom(16) for _ in range(4))
    master = kdf(z, b"sev-master-secret", nonce)
    kek, kik = kdf(master, b"sev-kek"), kdf(master, b"sev-kik")
    wrap_tk = ctr(kek, iv, tek + tik)
    session = nonce + wrap_tk + iv + hmac.new(kik, wrap_tk, hashlib.sha256).digest() + \
        hmac.new(tik, struct.pack("<I", POLICY), hashlib.sha256).digest()
    n = priv.public_key().public_numbers()
    godh = bytearray(CERT)
    struct.pack_into("<IBBHII I", godh, 0, 1, 0, 0, 0, 0x1003, 0x0003, 2)
    godh[0x14:0x14 + 48] = n.x.to_bytes(48, "little")
    godh[0x5C:0x5C + 48] = n.y.to_bytes(48, "little")
    struct.pack_into("<II", godh, 0x414, 0x1000, 0)
    struct.pack_into("<II", godh, 0x61C, 0x1000, 0)
    return bytes(godh), session, tek, tik


def check_measurement(measurement, tik, firmware):
    digest = hashlib.sha256(firmware).digest()
    head = bytes([0x04, API[0], API[1], API[2]]) + struct.pack("<I", POLICY)
    want = hmac.new(tik, head + digest + measurement[32:48], hashlib.sha256).digest()
    if not hmac.compare_digest(want, measurement[:32]):
        raise ValueError("measurement does not match")


def build_secret(tek, tik, measurement, value):
    entry = DISK_GUID + struct.pack("<I", 20 + len(value) + 1) + value + b"\0"
    unpadded = 20 + len(entry)
    size = unpadded + (-unpadded % 16)
    table = (TABLE_GUID + struct.pack("<I", size) + entry).ljust(size, b"\0")
    iv = os.urandom(16)
    payload = ctr(tek, iv, table)
    mac = hmac.new(tik, b"\x01" + struct.pack("<I", 0) + iv + struct.pack("<II", len(table), len(payload)) + payload + measurement[:32],
                   hashlib.sha256).digest()
    return struct.pack("<I", 0) + iv + mac, payload


def primitives_factory(chain, ca, firmware):
    """The raw calls the handshake cannot avoid, with keys and signatures prepared beforehand."""
    pdh, pek, oca, cek = (chain[i * CERT:(i + 1) * CERT] for i in range(4))
    ask, ark = parse_ca(ca[:len(ca) // 2]), parse_ca(ca[len(ca) // 2:])
    pek_k, oca_k, cek_k, pdh_k = ec_key(pek), ec_key(oca), ec_key(cek), ec_key(pdh)
    ecs = [(pek_k, ec_sig(pdh, 0), pdh[:0x414]), (oca_k, ec_sig(pek, 0), pek[:0x414]),
           (oca_k, ec_sig(oca, 0), oca[:0x414]), (cek_k, ec_sig(pek, 1), pek[:0x414])]
    ask_k, ark_k = rsa_key(ask["n"], ask["e"]), rsa_key(ark["n"], ark["e"])
    pad, h = pss(len(ask["n"]))
    rsas = [(ask_k, cek[0x41C:0x41C + 512][::-1], cek[:0x414]), (ark_k, ask["sig"][::-1], ask["body"]),
            (ark_k, ark["sig"][::-1], ark["body"])]
    k16, msg, iv = os.urandom(16), os.urandom(96), os.urandom(16)
    sha = ec.ECDSA(hashes.SHA256())

    def prim():
        for k, s, d in ecs:
            k.verify(s, d, sha)
        for k, s, d in rsas:
            k.verify(s, d, pad, h)
        p = ec.generate_private_key(ec.SECP384R1())
        p.exchange(ec.ECDH(), pdh_k)
        p.public_key().public_numbers()
        for _ in range(5):
            hmac.new(k16, msg, hashlib.sha256).digest()
        ctr(k16, iv, msg[:32])
        hashlib.sha256(firmware).digest()
        hmac.new(k16, msg, hashlib.sha256).digest()
        ctr(k16, iv, msg[:64])
        hmac.new(k16, msg, hashlib.sha256).digest()
    return prim


def main():
    mode, d = sys.argv[1], sys.argv[2]
    read = lambda n: open(os.path.join(d, n), "rb").read()
    chain, ca, firmware = read("chain.cert"), read("ca.cert"), read("firmware.bin")
    if mode == "session":
        godh, session, tek, tik = create_session(verify_chain(chain, ca))
        import base64
        print(json.dumps({"godh": base64.b64encode(godh).decode(), "session": base64.b64encode(session).decode(), "tek": tek.hex(), "tik": tik.hex()}))
    elif mode == "secret":
        tek, tik, m = (bytes.fromhex(x) for x in sys.argv[3:6])
        check_measurement(m, tik, firmware)
        header, payload = build_secret(tek, tik, m, b"correct horse battery staple")
        print(json.dumps({"header": header.hex(), "payload": payload.hex()}))
    elif mode == "bench":
        rounds = int(sys.argv[3])
        prim = primitives_factory(chain, ca, firmware)
        # The firmware's measurement is computed outside the timed part, as in bench/owner.ts.
        def op():
            t = time.perf_counter()
            pdh = verify_chain(chain, ca)
            godh, session, tek, tik = create_session(pdh)
            ms = time.perf_counter() - t
            nonce = os.urandom(16)
            head = bytes([0x04, API[0], API[1], API[2]]) + struct.pack("<I", POLICY)
            m = hmac.new(tik, head + hashlib.sha256(firmware).digest() + nonce, hashlib.sha256).digest() + nonce
            t = time.perf_counter()
            check_measurement(m, tik, firmware)
            build_secret(tek, tik, m, b"correct horse battery staple")
            return (ms + time.perf_counter() - t) * 1e3
        ops, prims = [], []
        for _ in range(3):
            op()
            prim()
        for _ in range(rounds):
            t = time.perf_counter()
            prim()
            prims.append((time.perf_counter() - t) * 1e3)
            ops.append(op())
        med = lambda xs: sorted(xs)[len(xs) // 2]
        print(json.dumps({"op_ms": med(ops), "prim_ms": med(prims)}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    try:
        main()
    except (InvalidSignature, ValueError) as e:
        print(f"owner_handshake.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
