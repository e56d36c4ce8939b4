"""A verifier worker process (`python -m voucher_engine.attestations.worker`), started by attestations/verifier.py.

It reads length-prefixed requests on standard input, each a pickled (holders, (attesters, campaign id, attester
name, now)), and answers each with the pickled list of `checks.verify_all`'s verdicts, length-prefixed, on
standard output, until its input ends. It imports only what verification needs (no asyncio, no database driver),
so that it starts in a tenth of a second, and writes nothing else anywhere.
"""

from __future__ import annotations

import fcntl
import pickle
import struct
import sys
from typing import BinaryIO

FRAME = struct.Struct(">Q")


# Pipes wide enough for a whole request (2,000 tokens, ~850 KB) or answer: the issuance's process writes the next
# request while this one verifies, and this one writes its answer and goes on, whenever either is busy.
PIPE_BYTES = 1 << 20


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    from voucher_engine.attestations.checks import verify_all

    for stream in (stdin, stdout):
        try:
            fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (OSError, AttributeError, ValueError):  # not a pipe, not Linux, or above the system's limit
            pass
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
