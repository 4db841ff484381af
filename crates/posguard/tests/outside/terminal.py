"""A POS terminal written from docs/protocol.md, docs/iso8583.md and docs/security.md.

It shares no code with posguard: the cup-pos field table is pyiso8583's, the keys
and MACs are pycryptodome's DES/TDES, and everything else is what the docs say. It
signs on, sells, reverses (also with a wrong amount), voids, sends an echo, a request
with a bad MAC and one that does not decode, and checks that every reply carries the
fields the docs list, signed the way they say. It prints one JSON object: the
outcome of every step, for the Rust test to check the cardholders' money.

Usage: terminal.py HOST PORT TID MID TMK_HEX PROFILE CARDS_JSON
CARDS_JSON: a list of {"pan", "pin", "expiry", "service_code"}, at least four.
"""

import json
import socket
import sys

import iso8583
from Crypto.Cipher import DES, DES3

# --- cup-pos field table (docs/iso8583.md "cup-pos", docs/protocol.md encodings) ---


def bcd(n, left=False):
    """A fixed BCD field of n digits; right-aligned unless `left` (pad nibble last)."""
    spec = {
        "data_enc": "b",
        "len_enc": "b",
        "len_type": 0,
        "max_len": n,
        "len_count": "nibbles",
        "desc": "",
    }
    spec["right_pad" if left else "left_pad"] = "0"
    return spec


def bcd_var(len_type, max_len):
    """A variable BCD field, left-aligned; the BCD length counts digits."""
    return {
        "data_enc": "b",
        "len_enc": "bcd",
        "len_type": len_type,
        "max_len": max_len,
        "len_count": "nibbles",
        "right_pad": "0",
        "desc": "",
    }


def ascii_fixed(n):
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": n, "desc": ""}


def ascii_var(len_type, max_len):
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_type, "max_len": max_len, "desc": ""}


def binary(n, len_type=0):
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": n, "desc": ""}


SPEC = {
    "h": ascii_fixed(0),
    "t": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 2, "desc": "MTI"},
    "p": binary(8),
    "1": binary(8),
    "2": bcd_var(1, 19),
    "3": bcd(6),
    "4": bcd(12),
    "11": bcd(6),
    "12": bcd(6),
    "13": bcd(4),
    "14": bcd(4),
    "22": bcd(3, left=True),
    "25": bcd(2),
    "32": bcd_var(1, 11),
    "35": bcd_var(1, 37),
    "37": ascii_fixed(12),
    "38": ascii_fixed(6),
    "39": ascii_fixed(2),
    "41": ascii_fixed(8),
    "42": ascii_fixed(15),
    "49": ascii_fixed(3),
    "52": binary(8),
    "53": bcd(16),
    "54": ascii_var(2, 20),
    "59": ascii_var(2, 600),
    "60": bcd_var(2, 100),
    "61": bcd_var(2, 29),
    "62": binary(512, len_type=2),
    "63": ascii_var(2, 163),
    "64": binary(8),
}

TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603210320072")

# --- keys, MAC, PIN block (docs/security.md, shared conventions the docs cite) ---


def cipher(key):
    """DES for a single-length key or a double-length one with equal halves, else TDES."""
    if len(key) == 8 or key[:8] == key[8:]:
        return DES.new(key[:8], DES.MODE_ECB)
    return DES3.new(key, DES3.MODE_ECB)


def check_value(key, n):
    return cipher(key).encrypt(bytes(8))[:n]


def unionpay_mac(mak, data):
    """XOR the zero-padded 8-byte blocks, hex the result, encrypt the first 8 hex
    characters, XOR with the last 8, encrypt again, keep 8 hex characters."""
    x = bytearray(8)
    padded = data + bytes(-len(data) % 8)
    for i in range(0, len(padded), 8):
        for j in range(8):
            x[j] ^= padded[i + j]
    h = x.hex().upper().encode()
    c = cipher(mak)
    first = c.encrypt(h[:8])
    first = bytes(a ^ b for a, b in zip(first, h[8:]))
    return c.encrypt(first).hex().upper().encode()[:8]


def pin_block(pik, pin, pan):
    block = bytes.fromhex(("0" + format(len(pin), "X") + pin).ljust(16, "F"))
    pan_part = bytes.fromhex("0000" + pan[:-1][-12:])
    return cipher(pik).encrypt(bytes(a ^ b for a, b in zip(block, pan_part)))


def encrypt_track(tdk, track):
    """Track 2 under the TDK: the 8 bytes ending one byte before the last of the packed
    track (`=` as nibble D, a pad nibble when the length is odd)."""
    nibbles = track.replace("=", "D")
    odd = len(nibbles) % 2
    packed = bytearray.fromhex(nibbles + ("0" if odd else ""))
    n = len(packed)
    packed[n - 9 : n - 1] = cipher(tdk).encrypt(bytes(packed[n - 9 : n - 1]))
    out = packed.hex().upper()
    return out[:-1] if odd else out


# --- the terminal ---


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


class Terminal:
    def __init__(self, host, port, tid, mid, tmk, profile):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.tid, self.mid, self.tmk, self.profile = tid, mid, tmk, profile
        self.location = None
        self.stan = 0
        self.batch = "000001"
        self.pik = self.mak = self.tdk = None
        self.log = []
        self.seen = []  # every reply: its MTI and the fields it carried

    def next_stan(self):
        self.stan = self.stan % 999999 + 1
        return format(self.stan, "06d")

    def pack(self, doc, mac):
        if mac:
            doc["64"] = "00" * 8
            raw, _ = iso8583.encode(doc, SPEC)
            raw = bytes(raw[:-8]) + unionpay_mac(self.mak, bytes(raw[:-8]))
        else:
            raw, _ = iso8583.encode(doc, SPEC)
            raw = bytes(raw)
        return raw

    def exchange_raw(self, message):
        body = TPDU + HEADER + message
        self.sock.sendall(len(body).to_bytes(2, "big") + body)
        while True:
            n = int.from_bytes(self.read(2), "big")
            if n:  # a zero-length frame is a keep-alive
                break
        body = self.read(n)
        expect(body[1:3] == TPDU[3:5] and body[3:5] == TPDU[1:3], "reply TPDU swaps source and destination")
        expect(body[5:11] == HEADER, "reply header is the request's")
        raw = body[11:]
        doc, _ = iso8583.decode(raw, SPEC)
        self.seen.append(doc["t"] + ":" + ",".join(k for k in doc if k.isdigit()))
        return raw, doc

    def read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise Failure("the acquirer closed the connection")
            out += chunk
        return out

    def exchange(self, doc, mac=True):
        raw, reply = self.exchange_raw(self.pack(doc, mac))
        expect(reply["t"] == format(int(doc["t"]) + 10, "04d"), f"reply MTI to {doc['t']}: {reply['t']}")
        expect(reply.get("11") == doc["11"], "reply echoes 11")
        expect(reply.get("41") == self.tid, "reply echoes 41")
        expect(reply.get("42") == self.mid, "reply echoes 42")
        return raw, reply

    def verify_mac(self, raw, reply):
        expect("64" in reply, f"reply {reply.get('39')} carries a MAC")
        expect(bytes(raw[-8:]) == unionpay_mac(self.mak, bytes(raw[:-8])), "reply MAC verifies under the MAK")

    def field60(self, tx_type, net="000"):
        return tx_type + self.batch + net

    def sign_on(self):
        doc = {"t": "0800", "11": self.next_stan(), "41": self.tid, "42": self.mid,
               "60": "00" + self.batch + self.profile, "63": "001"}
        _, r = self.exchange(doc, mac=False)
        expect(r.get("39") == "00", f"sign-on answered {r.get('39')}")
        for f in ["12", "13", "32", "37", "60", "62"]:
            expect(f in r, f"0810 carries {f}")
        expect("64" not in r, "0810 carries no MAC")
        expect(r["60"][:2] == "00" and r["60"][8:11] == self.profile, f"0810 field 60 {r['60']}")
        self.batch = r["60"][2:8]
        block = bytes.fromhex(r["62"])
        expect(len(block) == {"003": 40, "004": 60}[self.profile], "field 62 length")
        keys = []
        for i in range(0, len(block), 20):
            key = cipher(self.tmk).decrypt(block[i : i + 16])
            expect(check_value(key, 4) == block[i + 16 : i + 20], "working key check value")
            keys.append(key)
        self.pik, self.mak = keys[0], keys[1]
        self.tdk = keys[2] if self.profile == "004" else None
        self.log.append({"step": "sign_on", "39": r["39"], "batch": self.batch})

    def card_fields(self, card, with_pin=True):
        track = card["pan"] + "=" + card["expiry"] + card["service_code"]
        out = {"14": card["expiry"], "22": "051" if with_pin else "022"}
        if self.tdk is not None:
            out["35"] = encrypt_track(self.tdk, track)
            out["53"] = "1610000000000000"
        else:
            out["35"] = track.replace("=", "D")
        if with_pin:
            out["52"] = pin_block(self.pik, card["pin"], card["pan"]).hex()
        return out

    def check_financial_reply(self, raw, r, request, approved):
        self.verify_mac(raw, r)
        listed = ["3", "4", "11", "12", "13", "25", "32", "39", "41", "42", "49", "60"]
        for f in listed:
            if f in request or f in ("12", "13", "32", "39"):
                expect(f in r, f"{r['t']} ({r.get('39')}) carries {f}")
        for f in ["3", "4", "25", "49", "60"]:
            if f in request:
                expect(r[f] == request[f], f"{r['t']} echoes {f}: {r[f]} for {request[f]}")
        expect(len(r["12"]) == 6 and len(r["13"]) == 4, "12/13 are hhmmss and MMDD")
        expect("37" in r, f"{r['t']} ({r.get('39')}) carries the RRN")
        if approved:
            expect(r.get("39") == "00", f"{r['t']} approved, got {r.get('39')}")
            if r["t"] != "0410":
                expect("38" in r and len(r["38"]) == 6, "an approval carries 38")

    def sale(self, card, amount):
        doc = {"t": "0200", "3": "000000", "4": format(amount, "012d"), "11": self.next_stan(),
               "25": "00", "41": self.tid, "42": self.mid, "49": "156",
               "60": self.field60("22")}
        if self.location:
            doc["59"] = self.location
        doc.update(self.card_fields(card))
        return doc

    def send_sale(self, card, amount, step):
        doc = self.sale(card, amount)
        raw, r = self.exchange(doc)
        self.check_financial_reply(raw, r, doc, approved=True)
        self.log.append({"step": step, "39": r["39"], "rrn": r["37"], "auth": r["38"],
                         "time": r["13"] + r["12"]})
        return doc, r

    def reversal(self, original, reason, amount=None, step="reversal"):
        """The original's fields but 52 and 64, 39 = reason, 11 = the original's STAN."""
        doc = {k: v for k, v in original.items() if k not in ("52", "64")}
        doc["t"] = "0400"
        doc["39"] = reason
        if amount is not None:
            doc["4"] = format(amount, "012d")
        raw, r = self.exchange(doc)
        self.verify_mac(raw, r)
        self.log.append({"step": step, "39": r["39"], "rrn": r.get("37")})
        return r

    def void(self, card, sale_doc, sale_reply):
        doc = {"t": "0200", "3": "200000", "4": sale_doc["4"], "11": self.next_stan(),
               "25": "00", "37": sale_reply["37"], "38": sale_reply["38"], "41": self.tid,
               "42": self.mid, "49": "156", "60": self.field60("23"),
               "61": sale_doc["60"][2:8] + sale_doc["11"]}
        fields = self.card_fields(card, with_pin=False)
        doc["35"] = fields["35"]
        if "53" in fields:
            doc["53"] = fields["53"]
        raw, r = self.exchange(doc)
        self.check_financial_reply(raw, r, doc, approved=True)
        self.log.append({"step": "void", "39": r["39"], "rrn": r["37"]})

    def echo(self):
        doc = {"t": "0820", "11": self.next_stan(), "41": self.tid, "42": self.mid,
               "60": "00" + self.batch + "301"}
        _, r = self.exchange(doc, mac=False)
        expect(r.get("39") == "00", "echo answered 00")
        for f in ["12", "13", "32", "60"]:
            expect(f in r, f"0830 carries {f}")
        expect(r["60"] == doc["60"], "0830 echoes 60")
        expect("64" not in r, "0830 carries no MAC")
        self.log.append({"step": "echo", "39": r["39"]})

    def bad_mac_sale(self, card, amount):
        """A sale whose MAC is wrong: A0, no MAC; the terminal signs on again and
        reverses (it has no valid reply); the host knows no such sale: 25."""
        doc = self.sale(card, amount)
        raw = bytearray(self.pack(doc, mac=True))
        raw[-1] ^= 0x01
        raw, r = self.exchange_raw(bytes(raw))
        expect(r["t"] == "0210" and r.get("39") == "A0", f"bad MAC answered {r.get('39')}")
        expect(r.get("11") == doc["11"] and r.get("41") == self.tid, "A0 echoes 11 and 41")
        expect("64" not in r, "A0 carries no MAC")
        expect("37" not in r, "A0 carries no RRN (nothing was recorded)")
        self.log.append({"step": "bad_mac", "39": r["39"]})
        self.sign_on()
        r = self.reversal(doc, "A0", step="bad_mac_reversal")
        expect(r.get("39") == "25", f"reversal of an unrecorded sale answered {r.get('39')}")

    def undecodable(self):
        """A 0200 whose field 60 holds a non-digit: 30 with what could be read."""
        stan = self.next_stan()
        doc = {"t": "0200", "3": "000000", "4": "000000000100", "11": stan, "25": "00",
               "41": self.tid, "42": self.mid, "49": "156", "60": "22" + self.batch + "00A"}
        raw = self.pack(doc, mac=True)
        _, r = self.exchange_raw(raw)
        expect(r.get("39") == "30", f"undecodable request answered {r.get('39')}")
        for f, v in [("11", stan), ("41", self.tid), ("42", self.mid)]:
            expect(r.get(f) == v, f"30 echoes {f}")
        expect("64" not in r, "30 to an undecodable request carries no MAC")
        self.log.append({"step": "undecodable", "39": r["39"]})


def main():
    host, port, tid, mid, tmk, profile, cards = sys.argv[1:8]
    cards = json.loads(cards)
    t = Terminal(host, int(port), tid, mid, bytes.fromhex(tmk), profile)
    # Where it stands (field 59, "lat,lon"): a newly provisioned terminal sells only
    # from its install location.
    t.location = sys.argv[8] if len(sys.argv) > 8 else None
    result = {"ok": True}
    try:
        t.sign_on()
        t.echo()
        # 1. A sale that stands.
        t.send_sale(cards[0], 12_34, "sale")
        # 2. A sale whose reply the terminal "lost": it reverses it (98).
        doc, _ = t.send_sale(cards[1], 50_00, "sale_to_reverse")
        r = t.reversal(doc, "98")
        expect(r.get("39") == "00", f"reversal answered {r.get('39')}")
        # 3. A reversal naming its original with another amount still reverses it.
        doc, _ = t.send_sale(cards[2], 70_00, "sale_to_reverse_wrong_amount")
        r = t.reversal(doc, "98", amount=10_00, step="reversal_wrong_amount")
        expect(r.get("39") == "00", f"wrong-amount reversal answered {r.get('39')}")
        # 4. A sale voided.
        doc, reply = t.send_sale(cards[3], 30_00, "sale_to_void")
        t.void(cards[3], doc, reply)
        # 5. Refusals the docs describe.
        t.bad_mac_sale(cards[0], 1_00)
        t.undecodable()
    except (Failure, iso8583.DecodeError, iso8583.EncodeError, OSError) as e:
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    result["steps"] = t.log
    result["replies"] = t.seen
    print(json.dumps(result))


if __name__ == "__main__":
    main()
