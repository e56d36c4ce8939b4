"""Hard limits of the contract language.

Every contract is text typed by a person or posted over HTTP, so every dimension of it is bounded: a contract
that exceeds a limit is refused with a plain-language diagnostic, never with a RecursionError, a MemoryError or a
slow request. The numbers are generous for real policies (the six reference policies use a small fraction) and
small enough that checking and compiling one contract stays in the low milliseconds.
"""

from __future__ import annotations

# Text of one contract, in bytes of UTF-8. A policy document of a few pages fits in a few KiB.
MAX_SOURCE_BYTES = 64 * 1024
MAX_LINES = 2_000
# Nesting of parentheses and `not` inside one condition. Bounds the recursion of every tree walk (checker,
# compiler, reference interpreter) and of Python's own compile() on the generated code.
MAX_NESTING_DEPTH = 12
# Elements written in one `{...}` set, e.g. merchant categories or regions.
MAX_SET_SIZE = 500
# Elementary comparisons in the whole contract (holder + payment + item + rates).
MAX_CONDITIONS = 200
# Words, numbers and symbols outside comments and quotes (about the parser's tokens; counted before parsing). The
# parser is the checker's one cost that grows with the text (tens of microseconds a token), so this bounds a check's
# time to about 15 ms on a quiet core (`voucher-engine bench checker`): the six reference policies have 40 to 70;
# one set of 500 values (1,000: each value and its comma) and a hundred short conditions fit.
MAX_TOKENS = 1_500
MAX_FUNDERS = 16
MAX_RATES = 16
MAX_DECLARATIONS = 32
MAX_STRING_CHARS = 200
MAX_NAME_CHARS = 64
# Money: ¥100 billion in fen. Keeps every product (quantity x face value) far inside exact integer arithmetic
# and far inside what a JSON client can read back as an exact number.
MAX_MONEY_FEN = 100_000_000_000 * 100
MAX_QUANTITY = 1_000_000_000
MAX_PER_HOLDER = 1_000
# Relative validity: at most ten years.
MAX_VALIDITY_SECONDS = 10 * 366 * 24 * 3600
# Diagnostics reported for one contract; past this the list ends with a note that more were found.
MAX_DIAGNOSTICS = 50
# Items in one payment that an item voucher looks at; a payment with more is refused with a Failure.
MAX_PAYMENT_ITEMS = 200
