#!/usr/bin/python3
"""Where one load scenario's time goes: a perf flamegraph and callgrind's
top functions.

  profile.sh SCENARIO [--seconds N] [--all-pids] [--call-graph MODE]
                      [--cg-requests N] [--no-callgrind] [--build DIR]
                      [--out DIR] [--publish]

SCENARIO is one of perf.py's scenarios. Both halves start the scenario's own
stack (one worker, as perf.py) and drive it with the scenario's wrk script
(perf.load_of) after a warm-up:

perf      `perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -z` of
          omnigate (--all-pids: every server process of a macronode stack),
          its events on (through perf's control pipe) only while wrk loads
          it for N seconds (default 10); `perf script` goes
          through the flamegraph renderer (npm flamegraph@1.3.0, installed on
          demand in build/tools) into flamegraph.svg. cpu-clock because this
          VM has no hardware counters. DWARF stacks because the builds
          (-O2 -g) and Debian's libc/libuv have no frame pointers: `-g`
          (frame pointers) stacks stop after a frame or two. 16 KiB of stack
          per sample covers libuv's uv__io_poll, whose frame alone is 12.5
          KiB (its epoll event array); -z keeps perf.data small. Even so
          perf's unwinder stops in uv__io_poll (8, 16 and 64 KiB alike; gdb
          gets through), which cuts every I/O callback's stack: those get
          their thread's frames from uv_run down (see stitch()). BLAKE3's
          assembly kernels carry no unwind tables: their samples are a leaf
          alone. summary.txt counts both.
callgrind the same requests on omnigate under valgrind --tool=callgrind
          (~50x slower): a short wrk run measures the rate, a warm-up of
          1.5x --cg-requests follows, then counters are zeroed and dumped
          around a wrk run of about --cg-requests (default 2000, at most 90
          s) with 2 connections; callgrind_annotate's top 25 functions, self
          and inclusive, instructions per request and self instructions by
          component in callgrind-top.txt.

Outputs in OUT (default build/perf/profile-SCENARIO): perf.data,
perf.script, flamegraph.svg, callgrind.out, callgrind-top.txt and
summary.txt (load, samples, self time by component — kernel by syscall,
malloc/free, each source file of ours, each library — and the top self and
inclusive functions). --publish copies the flamegraph and callgrind-top.txt
to docs/perf/flamegraph-SCENARIO.svg and docs/perf/callgrind-SCENARIO.txt.

Runs as root: perf_event_paranoid does not apply then; kptr_restrict=2
(kernel symbols hidden even from root) is set to 0 for the run and put back.
"""
import argparse
import bisect
import collections
import glob
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perf  # noqa: E402
import perflib  # noqa: E402

RENDERER = "flamegraph@1.3.0"
TOOLS = os.path.join(perflib.ROOT, "build", "tools")
FLAMEGRAPH = os.path.join(TOOLS, "node_modules", ".bin", "flamegraph")
PERF_EVENT = ["-e", "cpu-clock", "-F", "999", "-z"]
WARMUP_S = 2
CG_CONNS, CG_PROBE_S, CG_CAP_S = 2, 3, 90
TOP = 25
KERNEL = "[kernel.kallsyms]"

MALLOC = re.compile(r"^(__GI___libc_|__libc_|_int_|__)?(malloc|calloc|realloc|free|cfree|"
                    r"malloc_consolidate|sysmalloc|unlink_chunk|tcache_\w+|arena_\w+)$")


def is_malloc(sym):
    return MALLOC.match(sym.split("@")[0]) is not None


def need(tool, hint):
    if not shutil.which(tool):
        sys.exit("profile: %s not found (%s)" % (tool, hint))


def renderer():
    """The flamegraph renderer, installed from npm on first use."""
    if not os.path.exists(FLAMEGRAPH):
        need("npm", "apt-get install npm")
        print("profile: installing %s into %s" % (RENDERER, TOOLS), flush=True)
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund",
                        "--prefix", TOOLS, RENDERER], check=True, cwd=perflib.ROOT)
    return FLAMEGRAPH


class KernelSymbols:
    """kptr_restrict=2 hides kernel addresses even from root: 0 for the run."""

    PATH = "/proc/sys/kernel/kptr_restrict"

    def __enter__(self):
        self.old = None
        with open(self.PATH) as f:
            value = f.read().strip()
        if value == "2" and os.geteuid() == 0:
            try:
                with open(self.PATH, "w") as f:
                    f.write("0")
                self.old = value
                print("profile: kernel.kptr_restrict 2 -> 0 for this run", flush=True)
            except OSError as e:
                print("profile: kptr_restrict stays 2 (%s): no kernel symbols" % e, file=sys.stderr)
        elif os.geteuid() != 0:
            with open("/proc/sys/kernel/perf_event_paranoid") as f:
                if int(f.read()) > 1:
                    print("profile: not root and perf_event_paranoid > 1: no kernel frames",
                          file=sys.stderr)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            with open(self.PATH, "w") as f:
                f.write(self.old)


# --- components: which part of the program a frame belongs to ----------------

class Symbols:
    """Address -> source file of our binaries (nm -l), so that two static
    functions of the same name in two files stay apart."""

    def __init__(self):
        self.maps = {}

    def file_of(self, binary, addr):
        if binary not in self.maps:
            rows = []
            out = subprocess.run(["nm", "-S", "-l", "--defined-only", binary],
                                 capture_output=True, text=True).stdout
            for line in out.splitlines():
                m = re.match(r"^([0-9a-f]+) ([0-9a-f]+) [tTwW] \S+\t(.+):\d+$", line)
                if m:
                    rows.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
            self.maps[binary] = sorted(rows)
        rows = self.maps[binary]
        i = bisect.bisect_right(rows, (addr, float("inf"), "")) - 1
        if i >= 0 and rows[i][0] <= addr < rows[i][0] + rows[i][1]:
            return rows[i][2]
        return None


def source_component(path, sym):
    """A source file of ours relative to the tree; vendored C by project name."""
    if "blake3" in sym or (path and "blake3" in path):
        return "BLAKE3"
    if sym.startswith("llhttp") or (path and "llhttp" in path):
        return "llhttp (HTTP/1 parser)"
    if path and path != "???":  # nm gives absolute paths, callgrind the compiler's
        rel = os.path.relpath(path, perflib.ROOT) if os.path.isabs(path) else os.path.normpath(path)
        if not rel.startswith(".."):
            return rel
    return None


def library(dso):
    if dso == KERNEL:
        return "kernel"
    name = os.path.basename(dso)
    return name.split(".so")[0] if ".so" in name else name


def is_ours(dso, build):
    return dso.startswith(build + os.sep)


def sample_component(frames, build, symbols):
    """Self time of one sample: the kernel by syscall; malloc/free; a library
    other than libc; else the source file of the innermost frame of ours
    (libc's string and memory functions count for their caller)."""
    ip, sym, dso = frames[0]
    if dso == KERNEL:
        if any(s == "do_syscall_64" for _, s, _ in frames):
            caller = next((s for _, s, d in frames if d != KERNEL), "?")
            return "kernel: " + re.sub(r"^(__GI___libc_|__GI___|__libc_|__)", "", caller)
        return "kernel: other (interrupts, faults)"
    for _, s, d in frames:
        if d == KERNEL:
            continue
        if is_malloc(s):
            return "malloc/free"
        if not is_ours(d, build):
            if library(d) != "libc":
                return library(d)
            continue
        break
    for ip, s, d in frames:
        if is_ours(d, build):
            return source_component(symbols.file_of(d, ip), s) or os.path.basename(d)
    return library(dso)


# --- perf ------------------------------------------------------------------

FRAME = re.compile(r"^\s+([0-9a-f]+) (.*) \((.*)\)$")


def read_samples(text):
    """perf script text -> [(comm, [(ip, sym, dso), ...] leaf first)]."""
    samples = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            samples.append((line.split()[0], []))
            continue
        m = FRAME.match(line)
        if m and samples:
            samples[-1][1].append((int(m.group(1), 16), m.group(2), m.group(3)))
    return [(comm, frames) for comm, frames in samples if frames]


def tidy(text):
    """Frames the renderer can merge: `[unknown]` in a library becomes
    `[libuv.so.1.0.0]`; frames of no known object (unwinding's end marker)
    go."""
    out = []
    for line in text.splitlines():
        m = FRAME.match(line)
        if m:
            ip, sym, dso = m.groups()
            if dso == "[unknown]":
                continue
            if sym == "[unknown]":
                line = "\t%16s [%s] (%s)" % (ip, os.path.basename(dso), dso)
        out.append(line)
    return "\n".join(out) + "\n"


def stitch(text):
    """perf's unwinder (libunwind in Debian's perf) stops inside libuv's
    uv__io_poll, whatever the stack dump size; gdb unwinds the same stacks
    through it into uv_run. A thread runs its loop's uv_run once, so the
    frames from uv_run down are those of any whole stack of that thread:
    a stack cut short in libuv gets them. Returns (text, stacks completed)."""
    samples = [b.splitlines() for b in text.split("\n\n") if b.strip()]
    below = {}
    for lines in samples:
        syms = [FRAME.match(l).group(2) for l in lines[1:]]
        if "uv_run" in syms:
            below.setdefault(lines[0].split()[1], lines[1 + syms.index("uv_run"):])
    done = 0
    for lines in samples:
        last = FRAME.match(lines[-1]) if len(lines) > 1 else None
        tail = below.get(lines[0].split()[1])
        if last and "libuv" in last.group(3) and tail and not any(" uv_run (" in l for l in lines):
            lines += tail
            done += 1
    return "\n\n".join("\n".join(lines) for lines in samples) + "\n", done


def perf_script(data, *opts):
    return stitch(tidy(subprocess.run(["perf", "script", "-i", data, "-F",
                                       "comm,tid,time,event,ip,sym,dso"] + list(opts),
                                      capture_output=True, text=True, check=True).stdout))


class PerfRecord:
    """perf record started with its events off, switched on and off through
    its control pipe (each command acknowledged), so that the samples cover
    the load and nothing else, however slowly perf attaches."""

    def __init__(self, args):
        ctl_r, self.ctl = os.pipe()
        self.ack, ack_w = os.pipe()
        self.proc = subprocess.Popen(["perf", "record", "-D", "-1", "--control",
                                      "fd:%d,%d" % (ctl_r, ack_w)] + args,
                                     pass_fds=(ctl_r, ack_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        os.close(ctl_r)
        os.close(ack_w)

    def command(self, cmd):
        os.write(self.ctl, cmd.encode() + b"\n")
        if not select.select([self.ack], [], [], 120)[0] or not os.read(self.ack, 16).startswith(b"ack"):
            self.proc.kill()
            sys.exit("profile: perf record did not take '%s': %s" % (cmd, self.proc.stderr.read()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=120)
        os.close(self.ctl)
        os.close(self.ack)


def perf_run(a, out):
    sc = perf.SCENARIOS[a.scenario]
    data = os.path.join(out, "perf.data")
    for old in (data, data + ".old"):
        if os.path.exists(old):
            os.unlink(old)
    with perflib.Stack(a.build, sc["profile"], workers=perf.WORKERS,
                       extra=sc.get("extra", ())) as st:
        url, script, env, args, headers = perf.load_of(st, a.scenario)
        perflib.wrk(url, script, WARMUP_S, 8, env=env, args=args, headers=headers)
        pids = st.pids if a.all_pids else st.pids[:1]
        with PerfRecord(PERF_EVENT + ["--call-graph", a.call_graph, "-o", data,
                                      "-p", ",".join(map(str, pids))]) as rec:
            rec.command("enable")
            cpu0 = st.cpu_seconds()
            w = perflib.wrk(url, script, a.seconds, sc["conns"], env=env, args=args, headers=headers)
            cpu1 = st.cpu_seconds()
            rec.command("disable")
    # Inlined functions as frames of their own for the flamegraph; the
    # summary reads real frames only (perf names the object of an inlined
    # leaf "inlined"), placed by address.
    text, _ = perf_script(data)
    if "cpu-clock" not in text:
        sys.exit("profile: perf recorded no samples")
    with open(os.path.join(out, "perf.script"), "w") as f:
        f.write(text)
    # Frames under a pixel wide (< 0.09 % of the samples) are left out:
    # invisible anyway, they would double the file.
    svg = subprocess.run([renderer(), "-t", "perf", "--countname", "samples", "--minwidth", "1"],
                         input=text, capture_output=True, text=True, check=True).stdout
    # The renderer writes a bare `&&` into every frame's onmouseover: not
    # XML, so a browser refuses the file; escaped, the script still runs.
    svg = re.sub(r"&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)", "&amp;", svg)
    with open(os.path.join(out, "flamegraph.svg"), "w") as f:
        f.write(svg)
    plain, stitched = perf_script(data, "--no-inline")
    return w, read_samples(plain), stitched, pids, cpu1 - cpu0


def share_table(title, counter, total, top=TOP):
    lines = ["%s:" % title]
    for name, n in counter.most_common(top):
        lines.append("  %6.2f%%  %7d  %s" % (100.0 * n / total, n, name))
    return lines


def label(sym, dso):
    return sym if sym.startswith("[") else "%s [%s]" % (sym, library(dso))


def perf_summary(samples, stitched, build):
    symbols = Symbols()
    total = max(len(samples), 1)
    comp, self_fn, incl = collections.Counter(), collections.Counter(), collections.Counter()
    procs, roots = collections.Counter(), collections.Counter()
    for comm, frames in samples:
        procs[comm] += 1
        comp[sample_component(frames, build, symbols)] += 1
        _, sym, dso = frames[0]
        self_fn[label(sym, dso)] += 1
        incl.update({label(s, d) for _, s, d in frames})
        _, sym, dso = frames[-1]
        roots["whole (down to the thread's start)" if sym in ("clone3", "_start") else
              "cut short in " + library(dso)] += 1
    kernel = sum(n for c, n in comp.items() if c.startswith("kernel"))
    lines = ["samples: %d; in the kernel: %.1f%%" % (len(samples), 100.0 * kernel / total), ""]
    if len(procs) > 1:
        lines += share_table("samples by process", procs, total) + [""]
    lines += share_table("stacks", roots, total, top=5)
    lines += ["  (%.2f%% of all were cut short in libuv's uv__io_poll by perf's unwinder and have"
              % (100.0 * stitched / total), "  their thread's frames from uv_run down added)", ""]
    lines += share_table("self time by component", comp, total, top=40) + [""]
    lines += share_table("top self functions", self_fn, total) + [""]
    lines += share_table("top inclusive functions", incl, total)
    return lines


# --- callgrind -------------------------------------------------------------

class CallgrindStack(perflib.Stack):
    """The scenario's stack with omnigate under callgrind."""

    def __init__(self, build, profile, out_file, extra=()):
        self.cg_out = out_file
        super().__init__(build, profile, workers=1, extra=extra)

    def _spawn(self, args, name):
        if name == "omnigate":
            args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + self.cg_out] + list(args)
        return super()._spawn(args, name)


ANNOTATED = re.compile(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.+?):(\S+) \[(.+)\]$")


def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                          "--inclusive=" + ("yes" if inclusive else "no"), path],
                         capture_output=True, text=True, check=True).stdout
    total, rows = 0, []
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
        m = ANNOTATED.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(3), m.group(4), m.group(5)))
    return total, rows


def served(st):
    return perflib.metric_sum(perflib.scrape(st.admin, timeout=60), "http_requests_total")


def callgrind_run(a, out):
    sc = perf.SCENARIOS[a.scenario]
    base = os.path.join(out, "callgrind.out")
    for old in glob.glob(base + "*"):
        os.unlink(old)
    with CallgrindStack(a.build, sc["profile"], base, sc.get("extra", ())) as st:
        url, script, env, args, headers = perf.load_of(st, a.scenario)

        def drive(seconds):
            return perflib.wrk(url, script, min(max(math.ceil(seconds), 1), CG_CAP_S), CG_CONNS,
                               env=env, args=args, headers=headers)

        # A short run gives the rate under callgrind, the warm-up a better
        # one. The wrk scripts are seeded: every run repeats one sequence,
        # so a warm-up longer than the measured run has touched all it asks.
        n0 = served(st)
        drive(CG_PROBE_S)
        rate = max((served(st) - n0) / CG_PROBE_S, 0.5)
        rate = max(drive(1.5 * a.cg_requests / rate)["rps"], rate)
        pid = str(st.pids[0])
        before = served(st)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        w = drive(a.cg_requests / rate)
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        requests = int(served(st) - before) or w["requests"]
    dumps = sorted(glob.glob(base + ".*"))
    if not dumps:
        sys.exit("profile: callgrind wrote no dump")
    # Frames still running at the dump are written as `calls=0`, which
    # callgrind_annotate 3.19 then counts as their self cost (worker_main
    # at 100 %): count them as one call.
    with open(dumps[0]) as f, open(base, "w") as g:
        g.write(re.sub(r"(?m)^calls=0 ", "calls=1 ", f.read()))
    for d in dumps:
        os.unlink(d)
    total, self_rows = annotate(base, False)
    _, incl_rows = annotate(base, True)

    comp = collections.Counter()
    for ir, path, fn, binary in self_rows:
        if is_malloc(fn):
            name = "malloc/free"
        elif is_ours(binary, a.build):
            name = source_component(path, fn) or os.path.basename(binary)
        else:
            name = library(binary)
        comp[name] += ir

    def rows(title, rs):
        lines = ["%s:" % title, "  %14s %7s %9s  %s" % ("Ir", "share", "Ir/req", "function")]
        for ir, path, fn, binary in rs[:TOP]:
            where = os.path.relpath(path, perflib.ROOT) if path.startswith(perflib.ROOT) else path
            lines.append("  %14s %6.2f%% %9.0f  %s  (%s, %s)" % (
                "{:,}".format(ir), 100.0 * ir / total, ir / requests, fn, where,
                os.path.basename(binary)))
        return lines

    head = ["callgrind, %s: %d requests (%d errors) on one omnigate worker, %d connections, "
            "after a warm-up of ~%d" % (a.scenario, requests, w["non2xx"] + w["socket_errors"],
                                        CG_CONNS, 1.5 * a.cg_requests),
            "instructions: %s in all, %.0f per request" % ("{:,}".format(total), total / requests),
            ""]
    text = (head + share_table("self instructions by component", comp, total, top=40) + [""]
            + rows("top functions, self", self_rows) + [""]
            + rows("top functions, inclusive", incl_rows))
    with open(os.path.join(out, "callgrind-top.txt"), "w") as f:
        f.write("\n".join(text) + "\n")
    return head


# --- main ------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=sorted(perf.SCENARIOS))
    p.add_argument("--seconds", type=float, default=10, help="perf record under load (10)")
    p.add_argument("--all-pids", action="store_true", help="macronode: record every server process")
    p.add_argument("--call-graph", default="dwarf,16384",
                   help="perf's stack mode (dwarf,16384; fp for a frame-pointer build)")
    p.add_argument("--cg-requests", type=int, default=2000,
                   help="requests measured under callgrind (2000; at most %d s of load)" % CG_CAP_S)
    p.add_argument("--no-callgrind", action="store_true")
    p.add_argument("--build", default=os.path.join(perflib.ROOT, "build"))
    p.add_argument("--out", default="")
    p.add_argument("--publish", action="store_true",
                   help="copy flamegraph and callgrind top into docs/perf/")
    a = p.parse_args()
    a.build = os.path.abspath(a.build)
    out = a.out or os.path.join(perflib.ROOT, "build", "perf", "profile-" + a.scenario)
    os.makedirs(out, exist_ok=True)
    for tool, hint in (("perf", "apt-get install linux-perf"), ("wrk", "apt-get install wrk"),
                       ("valgrind", "apt-get install valgrind")):
        need(tool, hint)
    renderer()

    with KernelSymbols():
        w, samples, stitched, pids, cpu = perf_run(a, out)
    sc = perf.SCENARIOS[a.scenario]
    summary = ["profile of %s, %s, build %s, %s" % (
                   a.scenario, perflib.git_commit(), a.build,
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
               "load: %s, %d worker, wrk 1 thread %d connections %g s: %.0f req/s, %d requests, "
               "%d errors; server CPU %.2f s; machine load average %.1f" % (
                   sc["profile"], perf.WORKERS, sc["conns"], a.seconds, w["rps"], w["requests"],
                   w["non2xx"] + w["socket_errors"], cpu, os.getloadavg()[0]),
               "perf: perf record %s --call-graph %s -p %s" % (
                   " ".join(PERF_EVENT), a.call_graph, ",".join(map(str, pids))),
               ""] + perf_summary(samples, stitched, a.build)
    if not a.no_callgrind:
        summary += [""] + callgrind_run(a, out) + ["(top functions: callgrind-top.txt)"]
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(summary) + "\n")

    if a.publish:
        docs = os.path.join(perflib.ROOT, "docs", "perf")
        os.makedirs(docs, exist_ok=True)
        shutil.copy(os.path.join(out, "flamegraph.svg"),
                    os.path.join(docs, "flamegraph-%s.svg" % a.scenario))
        if not a.no_callgrind:
            shutil.copy(os.path.join(out, "callgrind-top.txt"),
                        os.path.join(docs, "callgrind-%s.txt" % a.scenario))
    print("\n".join(summary[:40]))
    print("profile: %s/{flamegraph.svg,summary.txt%s}" % (
        out, "" if a.no_callgrind else ",callgrind-top.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
