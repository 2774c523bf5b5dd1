"""JSON between a JavaScript function node and its isolate, per message: js_bridge's rules, at less cost.

- `ValueEncoder`: one per node, reused for every value (js_bridge's `Encoder` makes a JSON encoder per value);
  `encode` answers the text with the value's own flags (bytes seen, NaN/Infinity seen).
- `decode_answer`: the operations an evaluation gave back. What most answers are (no held values, no
  Buffers, no whole numbers of 16 digits or more) is parsed by msgspec; anything else, or anything msgspec
  refuses (lone surrogates, numbers out of range), by js_bridge's `decode`, so the values are the same.
"""

from __future__ import annotations

from json import encoder as _json_encoder
from typing import Any

import msgspec

from sofiaflow.nodes.function.js_bridge import HELD_KEY, Encoder, HeldValues, decode

_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
"""Every digit to "0", everything else to a space: 16 zeros in a row are a run of 16 digits."""
_SIXTEEN = b"0" * 16
_decoder = msgspec.json.Decoder()
_c_make_encoder = getattr(_json_encoder, "c_make_encoder", None)


class ValueEncoder(Encoder):
    """js_bridge's Encoder made once per node: `encode` gives (text, bytes seen, strict JSON)."""

    def __init__(self, held: HeldValues) -> None:
        super().__init__(held)
        self._plain = self._dumps
        self._fast: Any = None
        self._build()

    def _build(self) -> None:
        if _c_make_encoder is None:  # not CPython: the standard encoder
            return
        try:
            self._fast = _c_make_encoder(
                {}, self._default, _json_encoder.encode_basestring, None, ":", ",", False, False, True
            )
        except TypeError:  # another interpreter's signature: the standard encoder
            return
        self._dumps = self._join

    def _join(self, value: Any) -> str:
        try:
            return "".join(self._fast(value, 0))
        except BaseException:
            self._build()  # its circular-reference markers may hold what the failed encoding left
            raise

    def encode_value(self, value: Any) -> tuple[str, bool, bool]:
        """(JSON text, whether bytes were seen, whether the text is strict JSON: no NaN/Infinity)."""
        self.buffers = False
        self.strict = True
        text = self.encode(value)
        return text, self.buffers, self.strict


def decode_answer(text: str, held: HeldValues) -> Any:
    """js_bridge's `decode` of `text`, parsed by msgspec when nothing in it needs more (see the module)."""
    if HELD_KEY not in text and '"Buffer"' not in text and not _long_digits(text):
        try:
            return _decoder.decode(text)
        except msgspec.DecodeError:
            pass
    return decode(text, held)


def _long_digits(text: str) -> bool:
    """Whether `text` has 16 digits in a row: maybe a whole number beyond 2**53, which JavaScript holds only
    approximately and js_bridge gives as a float (several times faster than a regular expression)."""
    return _SIXTEEN in text.encode("utf-8", "surrogatepass").translate(_DIGITS)
