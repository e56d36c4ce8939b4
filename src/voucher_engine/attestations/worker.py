"""A verifier worker process (`python -m voucher_engine.attestations.worker`), started by attestations/verifier.py.

It reads length-prefixed requests on standard input, each a pickled (holders, (attesters, campaign id, attester
name, now)), and answers each with the pickled list of `checks.verify_all`'s verdicts, length-prefixed, on
standard output, until its input ends. It imports only what verification needs (no asyncio, no database driver),
so that it starts in a tenth of a second, and writes nothing else anywhere.
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import BinaryIO

FRAME = struct.Struct(">Q")


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    from voucher_engine.attestations.checks import verify_all

    while True:
        head = stdin.read(FRAME.size)
        if len(head) < FRAME.size:
            return
        (size,) = FRAME.unpack(head)
        holders, (attesters, campaign_id, attester_name, now_s) = pickle.loads(stdin.read(size))
        answer = pickle.dumps(
            verify_all(holders, attesters, campaign_id, attester_name, now_s), protocol=pickle.HIGHEST_PROTOCOL
        )
        stdout.write(FRAME.pack(len(answer)))
        stdout.write(answer)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
