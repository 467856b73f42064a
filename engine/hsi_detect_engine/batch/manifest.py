"""The batch manifest: one JSON line per finished (or failed) job, appended as results arrive.

A record holds the job's key (a hash of its inputs' paths, sizes and modification times,
its settings and its outputs), its status, timings, peak memory, device, accuracy figures,
the inputs' sizes and times, the parameters and the outputs' SHA-256 checksums. A re-run
skips a job whose latest record with the same key is "done" and whose outputs still have
the recorded checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class Manifest:
    def __init__(self, path: str):
        self.path = path
        self.records = {}  # key -> latest record
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short when a batch was killed: that job simply runs again
                    if isinstance(rec, dict) and "key" in rec:
                        self.records[rec["key"]] = rec

    def finished(self, key: str) -> Optional[dict]:
        """The "done" record of this key when its outputs are still there, unchanged; else None."""
        rec = self.records.get(key)
        if not rec or rec.get("status") != "done":
            return None
        for path, digest in (rec.get("outputs") or {}).items():
            if not os.path.isfile(path):
                return None
            if digest and sha256_file(path) != digest:
                return None
        return rec

    def append(self, record: dict):
        """Append one record and make it durable, so an interrupted batch resumes from here."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        if os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line  # after a line cut short by a killed batch
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records[record["key"]] = record
