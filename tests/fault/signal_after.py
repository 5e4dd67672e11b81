# Sends SIGTERM to every rank of a running `mimic ... --out OUT` the moment OUT appears (the final rename),
# for tests/fault/fault.sh late_signal: a stop request that arrives after the output is complete must
# not turn the job into a failure. Prints how many ranks were still alive to receive it.
#   signal_after.py OUT [TIMEOUT_S]
import os
import signal
import sys
import time

out = os.path.abspath(sys.argv[1])
deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 120)


def ranks():
    """Pids of processes whose program is `mimic` and whose arguments hold --out OUT."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != b"mimic":
            continue
        args = [a.decode(errors="replace") for a in argv]
        if any(a == "--out" and i + 1 < len(args) and os.path.abspath(args[i + 1]) == out
               for i, a in enumerate(args)):
            found.append(int(pid))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


pids = []
while not os.path.exists(out) and time.time() < deadline:
    if len(pids) < 2:
        pids = ranks()
        time.sleep(0.01)
    else:
        time.sleep(0.0005)
delivered = 0
if os.path.exists(out):
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                delivered += 1
            except ProcessLookupError:
                pass
print(f"SIGTERM delivered to {delivered} of {len(pids)} ranks after {out} appeared")
