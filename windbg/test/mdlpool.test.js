// Tests of windbg/mdlpool.js outside the debugger: aggregation, formatting, the memory reader the
// debugger uses (over a fake memory laid out like the driver's root), and the --render command.
// Run: node --test windbg/test/
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const script = path.join(__dirname, "..", "mdlpool.js");
const m = require(script);
const fixtures = path.join(__dirname, "fixtures");

function load(name) {
    return JSON.parse(fs.readFileSync(path.join(fixtures, name), "utf8"));
}

// hand-two-cpus.json: 2 CPUs, classes 64 and 128 bytes (blocks 160 and 224), then the oversize row.
// The expected figures below are worked out by hand from the file.
test("aggregate sums each class over CPUs and derives in flight, depot and retained bytes", () => {
    const a = m.aggregate(load("hand-two-cpus.json"));
    assert.equal(a.classes.length, 3);
    const c0 = a.classes[0];
    assert.equal(c0.size, 64);
    assert.equal(c0.block_bytes, 160);
    assert.equal(c0.total_allocates, 120);
    assert.equal(c0.allocate_misses, 4);
    assert.equal(c0.total_frees, 116);
    assert.equal(c0.free_misses, 2);
    assert.equal(c0.magazine_blocks, 4, "depth 6 + (-2): signed per CPU, exact in the sum");
    assert.equal(c0.in_flight, 4, "120 allocates - 0 failures - 116 frees");
    assert.equal(c0.live_blocks, 12, "14 constructed - 2 returned");
    assert.equal(c0.retained_blocks, 8);
    assert.equal(c0.depot_blocks, 4, "retained 8 - magazines 4");
    assert.equal(c0.retained_bytes, 8 * 160);
    assert.equal(c0.high_water, 12);
    assert.ok(Math.abs(c0.alloc_hit - (116 * 100) / 120) < 1e-9);
    assert.ok(Math.abs(c0.free_hit - (114 * 100) / 116) < 1e-9);

    const c1 = a.classes[1];
    assert.equal(c1.in_flight, 2, "10 - 1 failure - 7");
    assert.equal(c1.retained_blocks, 0);
    assert.equal(c1.failures, 1);
    assert.equal(c1.injected, 1);

    const over = a.classes[2];
    assert.equal(over.label, "over");
    assert.equal(over.size, null);
    assert.equal(over.in_flight, 1);
    assert.equal(over.retained_bytes, 0, "oversize blocks are never cached");

    const t = a.total;
    assert.equal(t.total_allocates, 132);
    assert.equal(t.total_frees, 124);
    assert.equal(t.in_flight, 7);
    assert.equal(t.live_blocks, 15);
    assert.equal(t.retained_blocks, 8);
    assert.equal(t.retained_bytes, 1280);
    assert.equal(t.high_water, 16);
    assert.equal(t.depot_gets, 2);
    assert.equal(t.depot_puts, 3);
    assert.equal(t.trimmed, 2);
});

test("per-CPU rows sum over classes and keep a CPU's own (negative) depth", () => {
    const a = m.aggregate(load("hand-two-cpus.json"));
    assert.equal(a.cpus.length, 2);
    assert.equal(a.cpus[0].total_allocates, 112);
    assert.equal(a.cpus[0].failures, 1);
    assert.equal(a.cpus[1].total_allocates, 20);
    assert.equal(a.cpus[1].magazine_blocks, -2);
    assert.equal(a.cpus[0].total_allocates + a.cpus[1].total_allocates, a.total.total_allocates);
});

test("hit rates: none without operations, 100% without misses", () => {
    assert.equal(m.hitRate(0, 0), null);
    assert.equal(m.hitRate(10, 0), 100);
    assert.equal(m.hitRate(4, 1), 75);
});

test("the class table matches the recorded golden output and its columns line up", () => {
    for (const name of fs.readdirSync(fixtures).filter((f) => f.endsWith(".json"))) {
        const dump = load(name);
        const text = m.render(dump);
        const golden = fs.readFileSync(path.join(fixtures, name.replace(/\.json$/, ".txt")), "utf8");
        assert.equal(text, golden, name + ": regenerate with node windbg/mdlpool.js --render " + name);
        const lines = text.split("\n");
        const table = lines.slice(0, lines.findIndex((l) => l.startsWith("system allocs"))).filter((l) => /^(Class|\d|over|Total)/.test(l));
        assert.equal(table.length, dump.slots_per_cpu + 2, name);
        for (const l of table) {
            assert.equal(l.length, table[0].length, name + ": ragged row " + JSON.stringify(l));
        }
    }
});

test("the data-path table: one row per attached module, the detached totals, and their sum", () => {
    const a = m.aggregate(load("hand-two-cpus.json"));
    assert.equal(a.modules.attached, 2);
    assert.deepEqual(a.modules.rows.map((r) => r.label), ["m1", "m3", "detached"]);
    assert.equal(a.modules.total.send_nbls_transformed, 65);
    assert.equal(a.modules.total.bytes_written, 1680);
    assert.equal(a.modules.total.restores_advanced, 117);
    assert.equal(a.modules.total.pauses_pended, 1);
    const text = m.render(load("hand-two-cpus.json"));
    assert.match(text, /^data path: 2 attached module/m);
    assert.match(text, /^Total\s+65\s+65\s+50\s+55\s+1680\s+1\s+0\s+1\s+2\s+0\s+117\s+2\s+0\s+0\s+9$/m);
    // A dump without the data-path part (an older reader) still renders the pool.
    const dump = load("hand-two-cpus.json");
    delete dump.modules;
    delete dump.detached_totals;
    assert.doesNotMatch(m.render(dump), /data path/);
});

test("a '-' is printed for a rate with no operations and for the oversize size", () => {
    const text = m.render(load("hand-two-cpus.json"));
    const over = text.split("\n").find((l) => l.startsWith("over"));
    assert.match(over, /^over\s+-\s+-\s+2\s+2\s+0\.00%/);
    const dump = load("hand-two-cpus.json");
    for (const cpu of dump.counters) {
        for (const f of m.COUNTER_FIELDS) {
            cpu[1][f] = 0;
        }
    }
    const row1 = m.render(dump).split("\n").find((l) => l.startsWith("1 "));
    assert.match(row1, /^1\s+128\s+224\s+0\s+0\s+-\s+0\s+0\s+-/);
});

test("unloaded: the totals come from final_counters and there are no per-CPU rows", () => {
    const live = load("hand-two-cpus.json");
    const agg = m.aggregate(live);
    const dump = load("hand-two-cpus.json");
    dump.state = 3;
    dump.final_counters = [0, 1, 2].map((s) => {
        const row = {};
        for (const f of m.COUNTER_FIELDS) {
            row[f] = live.counters[0][s][f] + live.counters[1][s][f];
        }
        return row;
    });
    dump.counters = [];
    const u = m.aggregate(dump);
    assert.equal(u.live, false);
    assert.equal(u.cpus.length, 0);
    assert.deepEqual(u.total, agg.total);
    assert.match(m.render(dump), /driver unloaded/);
    assert.match(m.render(dump, { cpu: true }), /no per-CPU counters/);
});

test("malformed dumps are refused with a reason", () => {
    const bad = load("hand-two-cpus.json");
    bad.version = 2;
    assert.throws(() => m.aggregate(bad), /version 2/);
    const short = load("hand-two-cpus.json");
    short.counters.pop();
    assert.throws(() => m.aggregate(short), /counters has 1 CPUs/);
    const missing = load("hand-two-cpus.json");
    delete missing.counters[0][0].total_frees;
    assert.throws(() => m.aggregate(missing), /total_frees/);
    assert.throws(() => m.aggregate({}), /not an mdlpool stats dump/);
});

// ---- the debugger's reader, over a fake memory laid out like src/stats/mod.rs ----

// Offsets of MdlPoolStatsRoot as src/stats/mod.rs pins them (and the PDB reports them in WinDbg).
const ROOT_OFFSETS = {
    magic: 0x00, version: 0x08, size: 0x0c, state: 0x10, cpu_count: 0x14, class_count: 0x18,
    slots_per_cpu: 0x1c, cpu_stride: 0x20, slot_stride: 0x24, counters: 0x28, magazine_size: 0x30,
    depot_limit: 0x34, trim_interval_ms: 0x38, class_size: 0x40, block_bytes: 0x60, foreign_frees: 0x80,
    double_frees: 0x88, bad_cpu: 0x90, refreshes: 0x98, high_water: 0xa0, modules: 0xe8, module_slots: 0xf0,
    module_stats_offset: 0xf4, detached_totals: 0xf8, final_counters: 0x100
};

function layout() {
    const counter = {};
    m.COUNTER_FIELDS.forEach((f, i) => { counter[f] = i * 8; });
    const filter = {};
    m.FILTER_FIELDS.forEach((f, i) => { filter[f] = i * 8; });
    return { root: ROOT_OFFSETS, counter: counter, filter: filter, counter_size: 128 };
}

function fakeMemory(bytes) {
    const buf = Buffer.alloc(bytes);
    return {
        buf: buf,
        add: (a, n) => a + n,
        isNull: (a) => a === 0,
        readPointer: (a) => Number(buf.readBigUInt64LE(a)),
        read: (a, count, size, signed) => {
            const out = [];
            for (let i = 0; i < count; i++) {
                const at = a + i * size;
                if (size === 1) out.push(buf.readUInt8(at));
                else if (size === 4) out.push(buf.readUInt32LE(at));
                else out.push(Number(signed ? buf.readBigInt64LE(at) : buf.readBigUInt64LE(at)));
            }
            return out;
        }
    };
}

function writeRow(mem, at, row) {
    m.COUNTER_FIELDS.forEach((f, i) => mem.buf.writeBigInt64LE(BigInt(row[f]), at + i * 8));
}

// Lays a dump out in memory as the driver would: root at 0x1000, the CPU counter array at 0x4000.
function layOut(dump) {
    const mem = fakeMemory(0x10000);
    const root = 0x1000;
    const base = 0x4000;
    const o = ROOT_OFFSETS;
    mem.buf.write("MdlPStat", root + o.magic, "latin1");
    mem.buf.writeUInt32LE(dump.version, root + o.version);
    mem.buf.writeUInt32LE(dump.size, root + o.size);
    for (const f of ["state", "cpu_count", "class_count", "slots_per_cpu", "cpu_stride", "slot_stride",
        "magazine_size", "depot_limit", "trim_interval_ms"]) {
        mem.buf.writeUInt32LE(dump[f], root + o[f]);
    }
    for (const f of ["foreign_frees", "double_frees", "bad_cpu", "refreshes"]) {
        mem.buf.writeBigUInt64LE(BigInt(dump[f]), root + o[f]);
    }
    mem.buf.writeBigUInt64LE(BigInt(dump.counters.length ? base : 0), root + o.counters);
    dump.class_size.forEach((v, i) => mem.buf.writeUInt32LE(v, root + o.class_size + 4 * i));
    dump.block_bytes.forEach((v, i) => mem.buf.writeUInt32LE(v, root + o.block_bytes + 4 * i));
    dump.high_water.forEach((v, i) => mem.buf.writeBigUInt64LE(BigInt(v), root + o.high_water + 8 * i));
    dump.final_counters.forEach((r, s) => writeRow(mem, root + o.final_counters + 128 * s, r));
    dump.counters.forEach((cpu, c) => cpu.forEach((r, s) => writeRow(mem, base + c * dump.cpu_stride + s * dump.slot_stride, r)));
    // The filter's module list (0x8000), its modules (0x9000 + 0x200 * slot), the detached totals (0xc000).
    mem.buf.writeUInt32LE(dump.module_slots, root + o.module_slots);
    mem.buf.writeUInt32LE(dump.module_stats_offset, root + o.module_stats_offset);
    mem.buf.writeBigUInt64LE(0x8000n, root + o.modules);
    mem.buf.writeBigUInt64LE(0xc000n, root + o.detached_totals);
    const writeFilter = (at, counters) => m.FILTER_FIELDS.forEach((f, i) => mem.buf.writeBigUInt64LE(BigInt(counters[f]), at + 8 * i));
    for (const { slot, counters } of dump.modules) {
        const module = 0x9000 + 0x200 * slot;
        mem.buf.writeBigUInt64LE(BigInt(module), 0x8000 + 8 * slot);
        mem.buf.fill(0xAA, module, module + dump.module_stats_offset); // the rest of the module context
        writeFilter(module + dump.module_stats_offset, counters);
    }
    writeFilter(0xc000, dump.detached_totals);
    return { mem: mem, root: root };
}

test("readDump reads the root through the layout and strides back into the same dump", () => {
    const dump = load("hand-two-cpus.json");
    const { mem, root } = layOut(dump);
    const read = m.readDump(mem, layout(), root);
    assert.deepEqual(read, dump);
    assert.equal(m.render(read), m.render(dump));
});

test("readDump: unloaded root with NULL counters reads the final totals only", () => {
    const dump = load("hand-two-cpus.json");
    dump.state = 3;
    dump.counters = [];
    const { mem, root } = layOut(dump);
    const read = m.readDump(mem, layout(), root);
    assert.deepEqual(read.counters, []);
    assert.deepEqual(read.final_counters, dump.final_counters);
});

test("readDump refuses a wrong magic or version", () => {
    const dump = load("hand-two-cpus.json");
    const { mem, root } = layOut(dump);
    mem.buf.write("MdlPStaX", root, "latin1");
    assert.throws(() => m.readDump(mem, layout(), root), /magic/);
    mem.buf.write("MdlPStat", root, "latin1");
    mem.buf.writeUInt32LE(7, root + ROOT_OFFSETS.version);
    assert.throws(() => m.readDump(mem, layout(), root), /version 7/);
});

test("the layout names the script reads are the ones the test lays out", () => {
    for (const [name] of m.ROOT_FIELDS) {
        assert.ok(name in ROOT_OFFSETS, name);
    }
    assert.equal(m.ROOT_TYPE, "mdlpool::stats::MdlPoolStatsRoot");
    assert.equal(m.COUNTER_TYPE, "mdlpool::pool::stats::ClassCounters");
});

// ---- the command sysrun / xtask simulate and the README use ----

test("node mdlpool.js --render prints the table, from a file or stdin, and --json the aggregate", () => {
    const file = path.join(fixtures, "hand-two-cpus.json");
    const text = fs.readFileSync(file, "utf8");
    const r1 = spawnSync(process.execPath, [script, "--render", file], { encoding: "utf8" });
    assert.equal(r1.status, 0, r1.stderr);
    assert.equal(r1.stdout, m.render(JSON.parse(text)));
    const r2 = spawnSync(process.execPath, [script, "--render", "-", "--cpu"], { input: text, encoding: "utf8" });
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(r2.stdout, m.render(JSON.parse(text), { cpu: true }));
    const r3 = spawnSync(process.execPath, [script, "--render", file, "--json"], { encoding: "utf8" });
    assert.equal(r3.status, 0, r3.stderr);
    assert.equal(JSON.parse(r3.stdout).total.in_flight, 7);
    const r5 = spawnSync(process.execPath, [script, "--render", file, "--figures"], { encoding: "utf8" });
    assert.equal(r5.status, 0, r5.stderr);
    assert.match(r5.stdout, /^total\.in_flight 7$/m);
    assert.match(r5.stdout, /^class\.0\.retained_bytes 1280$/m);
    assert.match(r5.stdout, /^class\.over\.size|^class\.over\.total_allocates 2$/m);
    assert.match(r5.stdout, /^state 2$/m);
    assert.match(r5.stdout, /^datapath\.total\.bytes_written 1680$/m);
    assert.match(r5.stdout, /^datapath\.attached 2$/m);
    const r4 = spawnSync(process.execPath, [script, "--bogus"], { encoding: "utf8" });
    assert.equal(r4.status, 2);
});

test("the README's sample output is what the command prints today", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    const samples = readme.split("\n$ node windbg/mdlpool.js --render ").slice(1);
    assert.ok(samples.length >= 2, "README Debugging section shows the command and its output");
    for (const sample of samples) {
        const args = sample.slice(0, sample.indexOf("\n")).split(" ");
        const shown = sample.slice(sample.indexOf("\n") + 1).split(/\n(?:\$ |```)/)[0] + "\n";
        const dump = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", args[0]), "utf8"));
        assert.equal(shown, m.render(dump, { cpu: args.indexOf("--cpu") >= 0 }), "README sample of " + args.join(" "));
    }
});

// ---- the debugger glue itself, against a stand-in for WinDbg's `host` ----
// Kernel addresses do not fit in a JS number; the stand-in's Int64 keeps them exact (BigInt) and fails
// if the script ever turns an address into a number.
class Int64 {
    constructor(v) { this.v = BigInt(v); }
    add(n) { return new Int64(this.v + BigInt(n)); }
    compareTo(x) { const o = x instanceof Int64 ? x.v : BigInt(x); return this.v < o ? -1 : this.v > o ? 1 : 0; }
    convertToNumber() { return Number(this.v); }
    valueOf() { throw new Error("an Int64 was used as a JS number"); }
}

function fakeHost(dump, log) {
    const BASE = 0xffff_f800_1234_0000n; // where the fake image's memory starts
    const { mem, root } = layOut(dump);
    // Rebase every pointer the layout wrote (small offsets) into the kernel range.
    const rebase = (at) => {
        const v = mem.buf.readBigUInt64LE(at);
        if (v !== 0n) mem.buf.writeBigUInt64LE(v + BASE, at);
    };
    rebase(root + ROOT_OFFSETS.counters);
    rebase(root + ROOT_OFFSETS.modules);
    rebase(root + ROOT_OFFSETS.detached_totals);
    for (let i = 0; i < dump.module_slots; i++) rebase(0x8000 + 8 * i);
    const offsetOf = (a) => {
        if (!(a instanceof Int64)) throw new Error("address is not an Int64: " + a);
        return Number(a.v - BASE);
    };
    const types = {};
    types[m.ROOT_TYPE] = { size: 0x100 + 9 * 128, fields: {} };
    for (const n in ROOT_OFFSETS) types[m.ROOT_TYPE].fields[n] = { offset: ROOT_OFFSETS[n] };
    types[m.COUNTER_TYPE] = { size: 128, fields: {} };
    m.COUNTER_FIELDS.forEach((n, i) => { types[m.COUNTER_TYPE].fields[n] = { offset: 8 * i }; });
    types[m.FILTER_TYPE] = { size: 8 * m.FILTER_FIELDS.length, fields: {} };
    m.FILTER_FIELDS.forEach((n, i) => { types[m.FILTER_TYPE].fields[n] = { offset: 8 * i }; });
    return {
        Int64: (v) => new Int64(v),
        getModuleType: (module, name) => {
            assert.equal(module, "mdlpool");
            if (!types[name]) throw new Error("no type " + name);
            return types[name];
        },
        getModuleSymbolAddress: (module, name) => {
            assert.deepEqual([module, name], ["mdlpool", "MdlPoolStats"]);
            return new Int64(BASE + BigInt(root));
        },
        memory: {
            readMemoryValues: (addr, count, size, signed) => {
                const at = offsetOf(addr);
                const out = [];
                for (let i = 0; i < count; i++) {
                    const o = at + i * size;
                    if (size === 1) out.push(mem.buf.readUInt8(o));
                    else if (size === 4) out.push(mem.buf.readUInt32LE(o));
                    else out.push(new Int64(signed ? mem.buf.readBigInt64LE(o) : mem.buf.readBigUInt64LE(o)));
                }
                return out;
            }
        },
        diagnostics: { debugLog: (s) => log.push(s) },
        functionAlias: function (fn, name) { this.fn = fn; this.name = name; },
        apiVersionSupport: function (major, minor) { this.major = major; this.minor = minor; }
    };
}

test("!mdlpool in a stand-in debugger: kernel addresses stay Int64, the table equals the dump's", () => {
    const dump = load("hand-two-cpus.json");
    const log = [];
    global.host = fakeHost(dump, log);
    try {
        assert.deepEqual(m.readDumpFromDebugger(), dump);
        m.mdlpool();
        assert.equal(log.join(""), m.render(dump));
        log.length = 0;
        m.mdlpool("cpu");
        assert.equal(log.join(""), m.render(dump, { cpu: true }));
        const init = m.initializeScript();
        assert.ok(init.some((x) => x.name === "mdlpool" && x.fn === m.mdlpool), "registers !mdlpool");
        // A driver whose PDB lacks a field the script reads: a clear error, not wrong numbers.
        delete global.host.getModuleType(m.MODULE_NAME, m.COUNTER_TYPE).fields.free_misses;
        assert.throws(() => m.readDumpFromDebugger(), /ClassCounters has no field 'free_misses'/);
    } finally {
        delete global.host;
    }
});
