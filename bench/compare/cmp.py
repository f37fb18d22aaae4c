#!/usr/bin/python3
"""Helper of bench/compare.sh: small jobs that are awkward in bash.

    cmp.py port                          a free TCP port on 127.0.0.1
    cmp.py waitport PORT SECONDS         wait until 127.0.0.1:PORT accepts (exit 1 on timeout)
    cmp.py secret                        a fresh random JWT secret (64 base64url characters)
    cmp.py token SECRET SUB NAME         an HS256 user token for parleyd, valid 2 hours
    cmp.py get FILE KEY[.KEY...]         one field of a parley-bench --json report
    cmp.py record TSV NOTES WORKLOAD TARGET REP KIND FILE
                                         check one raw result (KIND bench or wrk) and append
                                         its figures to TSV and its errors to NOTES
    cmp.py median TSV WORKLOAD TARGET METRIC
                                         the median over the repetitions recorded so far
    cmp.py table TSV NOTES META OUT_MD   print the markdown table of ratios and bars, save it
    cmp.py cpu PID... -- PID...          CPU seconds of the servers and of the side processes
                                         (redis-server), and the monotonic clock
    cmp.py cpurecord TSV WORKLOAD TARGET REP BEFORE TIMEFILE PID... -- PID...
                                         record the CPU cores busy since BEFORE (cmp.py cpu's
                                         line): srv_cores, side_cores, and client_cores from
                                         /usr/bin/time -f '%U %S %e' output

Standard library only (runs on Debian's /usr/bin/python3).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import statistics
import sys
import time


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cmd_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_waitport(port, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=0.5):
                return 0
        except OSError:
            time.sleep(0.05)
    return 1


def cmd_secret():
    print(b64url(secrets.token_bytes(48)))


def cmd_token(secret, sub, name):
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": sub, "name": name, "iat": now, "exp": now + 7200},
                             separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    print(f"{head}.{body}.{b64url(sig)}")


def proc_cpu(pids):
    """User + system CPU seconds of these processes (all their threads), 0 for a gone one."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / hz
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy():
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return (sum(v[:8]) - v[3] - v[4]) / hz


def split_pids(args):
    i = args.index("--") if "--" in args else len(args)
    return [a for a in args[:i] if a], [a for a in args[i + 1:] if a]


def cmd_cpu(*args):
    srv, side = split_pids(list(args))
    print(f"{proc_cpu(srv)} {proc_cpu(side)} {machine_busy()} {time.monotonic()}")


def cmd_cpurecord(tsv, workload, target, rep, before, timefile, *args):
    srv, side = split_pids(list(args))
    srv0, side0, busy0, t0 = (float(x) for x in before.split())
    busy = machine_busy() - busy0
    wall = time.monotonic() - t0
    if wall <= 0:
        return 1
    figures = {"srv_cores": (proc_cpu(srv) - srv0) / wall}
    ours = figures["srv_cores"]
    if side:
        figures["side_cores"] = (proc_cpu(side) - side0) / wall
        ours += figures["side_cores"]
    try:
        with open(timefile, encoding="ascii") as f:
            u, s_, e = (float(x) for x in f.read().split()[-3:])
        if e > 0:
            figures["client_cores"] = (u + s_) / e
            ours += (u + s_) / wall
    except (OSError, ValueError):
        pass
    # Everything else the machine did meanwhile (other processes, the kernel's own work
    # not charged to ours): a figure taken while this is high is not this machine's best.
    figures["other_cores"] = max(0.0, busy / wall - ours)
    with open(tsv, "a", encoding="utf-8") as f:
        for k, v in figures.items():
            f.write(f"{workload}\t{target}\t{k}\t{rep}\t{v}\n")
    return 0


def load_report(path):
    """The last line of the file that is a JSON object (parley-bench --json prints one)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    if not lines:
        raise ValueError(f"{path}: no JSON report")
    return json.loads(lines[-1])


def cmd_get(path, key):
    v = load_report(path)
    for k in key.split("."):
        v = v[k]
    print(v)


WRK_UNITS = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}


def parse_wrk(text):
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        raise ValueError("no 'Requests/sec:' line in wrk's output")
    out = {"throughput": float(m.group(1))}
    # --latency's distribution: "     99%    1.23ms"
    for pct, val, unit in re.findall(r"^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", text, re.M):
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
        out[f"p{pct}"] = float(val) * scale
    errors = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for kind, n in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(n):
                errors[kind] = int(n)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors["non_2xx"] = int(m.group(1))
    out["errors"] = sum(errors.values())
    m = re.search(r"^\s*(\d+) requests in", text, re.M)
    total = int(m.group(1)) if m else 0
    # A route that stopped answering 200 (a room gone) measures an error path: not the run.
    if errors.get("non_2xx", 0) > 0.01 * max(total, 1):
        raise ValueError(f"{errors['non_2xx']} of {total} responses were not 2xx")
    return out, errors


def cmd_record(tsv, notes, workload, target, rep, kind, path):
    if kind == "wrk":
        with open(path, encoding="utf-8", errors="replace") as f:
            figures, errors = parse_wrk(f.read())
    else:
        r = load_report(path)
        figures = {k: v for k, v in r.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for k, v in (r.get("latency_ms") or {}).items():
            figures[k] = v
        errors = r.get("errors_by_kind") or {}
        if r.get("setup_complete") is False:
            raise ValueError(f"{path}: churn setup did not complete "
                             f"({r.get('members_live')} of {r.get('members_total')} members)")
        if not r.get("ok") and not figures.get("opened"):
            raise ValueError(f"{path}: nothing succeeded (errors {errors})")
    with open(tsv, "a", encoding="utf-8") as f:
        for k, v in sorted(figures.items()):
            f.write(f"{workload}\t{target}\t{k}\t{rep}\t{v}\n")
    if errors:
        with open(notes, "a", encoding="utf-8") as f:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))
            f.write(f"{workload} / {target} run {rep}: {sum(errors.values())} errors ({kinds})\n")


def load_tsv(tsv):
    data = {}
    if os.path.exists(tsv):
        with open(tsv, encoding="utf-8") as f:
            for line in f:
                w, t, m, _rep, v = line.rstrip("\n").split("\t")
                data.setdefault((w, t, m), []).append(float(v))
    return data


def cmd_median(tsv, workload, target, metric):
    vals = load_tsv(tsv).get((workload, target, metric))
    if not vals:
        return 1
    print(f"{statistics.median(vals):.6g}")
    return 0


def fmt_num(v, unit=""):
    if v is None:
        return "—"
    if unit == "ms":
        return f"{v:.3f}"
    if unit == "B":
        return f"{v:,.0f}"
    if unit == "cores":
        return f"{v:.3f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def cell(vals, unit):
    """median, and the spread [min–max] when there was more than one run."""
    if not vals:
        return "not run"
    med = statistics.median(vals)
    s = fmt_num(med, unit)
    if len(vals) > 1:
        s += f" [{fmt_num(min(vals), unit)}–{fmt_num(max(vals), unit)}]"
    return s


def ratio_text(kind, r, base_t):
    if r is None:
        return "—"
    if kind == "mem/base":
        return f"memory = {r:.2f}× {base_t}"
    if kind == "base/mem":
        return f"memory = 1/{r:.1f} of {base_t}"
    return f"redis = {r:.2f}× memory"


def med(vals):
    return statistics.median(vals) if vals else None


DISTURBED = 0.3


def cmd_table(tsv, notes, meta_path, out_md):
    data = load_tsv(tsv)
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)

    def vals(w, t, m):
        return data.get((w, t, m), [])

    rows = []

    def row(workload, metric, unit, w, m, base_t=None, ratio=None, bar="", check=None):
        """ratio: 'mem/base', 'base/mem', 'redis/mem' or None. check(ratio_or_value) -> bool."""
        mv = vals(w, "memory", m)
        rv = vals(w, "redis", m)
        bv = vals(w, base_t, m) if base_t else []
        mm, rm, bm = med(mv), med(rv), med(bv)
        r = None
        if ratio == "mem/base" and mm is not None and bm:
            r = mm / bm
        elif ratio == "base/mem" and bm is not None and mm:
            r = bm / mm
        elif ratio == "redis/mem" and rm is not None and mm:
            r = rm / mm
        subject = r if ratio else mm
        if check is None:
            verdict = ""
        elif subject is None:
            verdict = "not run"
        else:
            verdict = "pass" if check(subject) else "**FAIL**"
        rows.append([workload, metric, cell(mv, unit), cell(rv, unit),
                     (cell(bv, unit) + f" ({base_t})") if base_t else "—",
                     ratio_text(ratio, r, base_t), bar, verdict])

    relay_conns = meta.get("relay_conns")
    relay_window = meta.get("relay_window", 8)
    row("relay", f"messages/s flat out ({relay_conns} sockets, window {relay_window})", "",
        "relay", "throughput",
        base_t="peerjs", ratio="mem/base", bar="≥ 10× PeerJS", check=lambda x: x >= 10)
    peak_m = med(vals("relay", "memory", "throughput"))
    half = f"{peak_m / 2:,.0f} msg/s" if peak_m else "peak/2"
    row("relay", f"p99 ms at half of each server's peak (parleyd memory: {half})", "ms",
        "relay-half", "p99", base_t="peerjs", bar="≤ 1 ms (memory)",
        check=lambda x: x <= 1.0)
    row("relay", "messages/s flat out, Redis vs memory engine", "", "relay", "throughput",
        ratio="redis/mem", bar="≥ 0.5×", check=lambda x: x >= 0.5)
    row("rest", f"requests/s flat out ({meta.get('rest_conns')} connections)", "", "rest",
        "throughput", ratio="redis/mem", bar="≥ 0.5×", check=lambda x: x >= 0.5)
    held = []
    for t in ("memory", "redis", "peerjs"):
        h = med(vals("idle", t, "opened"))
        if h is not None:
            held.append(f"{t} {h:,.0f}")
    held_s = ", ".join(held) or "none"
    row("idle", (f"server bytes per held WebSocket (sockets held of "
                 f"{meta.get('idle_conns'):,}: {held_s})"),
        "B", "idle", "bytes_per_conn", base_t="peerjs", ratio="base/mem",
        bar="PeerJS/parleyd ≥ 8×", check=lambda x: x >= 8)
    row("idle", "server bytes per held WebSocket, absolute", "B", "idle", "bytes_per_conn",
        bar="≤ 4096 B (memory)", check=lambda x: x <= 4096)
    row("idle", "server bytes per held WebSocket with its membership (info)", "B", "idle",
        "bytes_per_conn_total", base_t="peerjs", ratio="base/mem")
    wrk = f"wrk -t1 -c{meta.get('wrk_conns')}"
    row("http", f"GET /healthz requests/s ({wrk}; nginx: return 200, 1 worker)", "", "healthz",
        "throughput", base_t="nginx", ratio="mem/base", bar="≥ 1.0× nginx",
        check=lambda x: x >= 1.0)
    row("http", f"API: {meta.get('api_route')} requests/s ({wrk})", "", "api",
        "throughput", base_t="nginx", ratio="mem/base", bar="≥ 0.7× nginx",
        check=lambda x: x >= 0.7)
    hb = med(vals("churn", "memory", "heartbeat_rate"))
    hb_s = f", {hb:,.0f} heartbeats/s" if hb else ""
    row("churn", (f"server CPU cores: {meta.get('churn_rooms'):,} rooms × "
                  f"{meta.get('churn_members')} members, heartbeat every "
                  f"{meta.get('churn_heartbeat')} s{hb_s}"), "cores", "churn", "server_cpu_cores",
        bar="< 1 core (memory)", check=lambda x: x < 1)

    head = ["workload", "metric", "parleyd memory", "parleyd redis", "baseline (PeerJS/nginx)",
            "ratio", "bar", "pass/FAIL"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    extra = [
        "",
        f"Cells: median of {meta.get('repeat')} run(s) [min–max]; {meta.get('duration')} s "
        f"per run; every server on this machine, in this run, one after the other "
        f"({meta.get('machine')}).",
    ]
    cpu = []
    names = {"relay": "relay flat out", "relay-half": "relay at peak/2", "rest": "rest",
             "healthz": "wrk /healthz", "api": "wrk API route"}
    for w, label in names.items():
        parts = []
        for t in ("memory", "redis", "peerjs", "nginx"):
            srv = med(vals(w, t, "srv_cores"))
            if srv is None:
                continue
            p = f"{t} {srv:.2f}"
            side = med(vals(w, t, "side_cores"))
            if side is not None:
                p += f" + redis-server {side:.2f}"
            cli = med(vals(w, t, "client_cores"))
            if cli is not None:
                p += f" (client {cli:.2f})"
            other = med(vals(w, t, "other_cores"))
            if other is not None:
                p += f" [other {other:.2f}]"
            parts.append(p)
        if parts:
            cpu.append(f"- {label}: " + "; ".join(parts))
    if cpu:
        extra += ["", "CPU cores busy during the runs, medians over each run's wall time (setup "
                  "included): the server, (the load generator), [everything else on the "
                  "machine: other processes, interrupts; high means a disturbed figure]:", ""]
        extra += cpu
    disturbed = []
    if os.path.exists(tsv):
        with open(tsv, encoding="utf-8") as f:
            for line in f:
                w, t, m, rep, v = line.rstrip("\n").split("\t")
                # idle measures memory, which other load does not change
                if m == "other_cores" and float(v) > DISTURBED and w != "idle":
                    disturbed.append(f"{w}/{t} run {rep} ({float(v):.2f})")
    if disturbed:
        extra += ["", f"Runs during which other work took more than {DISTURBED} of a core "
                  "(their figures are low; rerun on a quiet machine): " + ", ".join(disturbed)
                  + "."]
    if os.path.exists(notes) and os.path.getsize(notes):
        with open(notes, encoding="utf-8") as f:
            extra += ["", "Errors and notes:", ""] + [f"- {l.rstrip()}" for l in f if l.strip()]
    text = "\n".join(lines + extra) + "\n"
    with open(out_md, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def main(argv):
    cmds = {"port": (cmd_port, 0), "waitport": (cmd_waitport, 2), "secret": (cmd_secret, 0),
            "token": (cmd_token, 3), "get": (cmd_get, 2), "record": (cmd_record, 7),
            "median": (cmd_median, 4), "table": (cmd_table, 4)}
    variadic = {"cpu": (cmd_cpu, 0), "cpurecord": (cmd_cpurecord, 6)}
    if len(argv) >= 2 and argv[1] in variadic and len(argv) - 2 >= variadic[argv[1]][1]:
        try:
            return variadic[argv[1]][0](*argv[2:]) or 0
        except (OSError, ValueError) as e:
            sys.stderr.write(f"cmp.py {argv[1]}: {e}\n")
            return 1
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.stderr.write(__doc__)
        return 2
    try:
        rc = cmds[argv[1]][0](*argv[2:])
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        sys.stderr.write(f"cmp.py {argv[1]}: {e}\n")
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
