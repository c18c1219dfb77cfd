// mdlpool.js: WinDbg JavaScript extension that prints mdlpool's pool statistics the way `!lookaside`
// prints a lookaside list, and the one place where the statistics table is formatted.
//
// In WinDbg (kernel debugging, live or crash dump):
//     .scriptload <repo>\windbg\mdlpool.js
//     !mdlpool                        per size class, then totals
//     !mdlpool "cpu"                  per CPU, then totals
//     dx @$scriptContents.mdlpool()   the same, through the data model
//     dx -r2 @$scriptContents.mdlpoolRoot()   the typed root (with .nvload mdlpool.natvis: the dx view)
//     dx @$scriptContents.mdlpoolDump()   the raw dump object (what the table is computed from)
//
// Outside the debugger (node >= 12, no dependencies), the same code renders a recorded dump:
//     node windbg/mdlpool.js --render windbg/test/fixtures/sim-4cpu-running.json [--cpu | --json | --figures]
//     ... | node windbg/mdlpool.js --render -
// `cargo xtask simulate` / sysrun write the dump of the shipped image's stats root as JSON and pipe it
// here, so the table printed on Linux and the table printed in WinDbg come from this one file.
//
// Structure: the debugger-only part is `readDumpFromDebugger` (it reads memory through the field offsets
// the PDB gives for the names in LAYOUT). Everything else (aggregate, format*, render) is plain
// functions over a plain "dump" object, exercised by `node --test windbg/test/`.
//
// The dump object (also the JSON file format):
//   { format: "mdlpool-stats-dump", version, size, state, cpu_count, class_count, slots_per_cpu,
//     cpu_stride, slot_stride, magazine_size, depot_limit, trim_interval_ms,
//     foreign_frees, double_frees, bad_cpu, refreshes,
//     class_size: [u32 x class_count], block_bytes: [u32 x class_count], high_water: [u64 x slots_per_cpu],
//     counters: [ [ {<COUNTER_FIELDS>} x slots_per_cpu ] x cpu_count ],   (live counters; [] once unloaded)
//     final_counters: [ {<COUNTER_FIELDS>} x slots_per_cpu ],             (kept in the image at unload)
//     module_slots, module_stats_offset,                                    (optional from here on:)
//     modules: [ { slot, counters: {<FILTER_FIELDS>} } ],  (attached filter modules' data-path counters)
//     detached_totals: {<FILTER_FIELDS>} }                 (summed over the modules that have detached)
// Slot i < class_count is size class i; slot class_count is the oversize (uncached) row.
// Counters are unsigned 64-bit in the driver and JS numbers here: exact up to 2^53.
//
// Only ES2015 features are used: WinDbg's script engine is not a recent JavaScript engine.
"use strict";

// ---------------------------------------------------------------------------------------------------------
// The layout contract: every field name this script reads. `cargo xtask package` checks each against the
// PDB (the type must exist and have the field), so a rename in Rust without a rename here fails the build.
// ---------------------------------------------------------------------------------------------------------
var MODULE_NAME = "mdlpool";
var ROOT_SYMBOL = "MdlPoolStats";
var ROOT_TYPE = "mdlpool::stats::MdlPoolStatsRoot";
var COUNTER_TYPE = "mdlpool::pool::stats::ClassCounters";
var FILTER_TYPE = "mdlpool::filter::stats::FilterStats";
var ROOT_MAGIC_TEXT = "MdlPStat";
var SUPPORTED_VERSION = 1;

// Fields of ROOT_TYPE read as [name, element size in bytes, element count ("" = scalar, else the name
// of the root field holding the count)].
var ROOT_FIELDS = [
    ["magic", 8, ""],
    ["version", 4, ""],
    ["size", 4, ""],
    ["state", 4, ""],
    ["cpu_count", 4, ""],
    ["class_count", 4, ""],
    ["slots_per_cpu", 4, ""],
    ["cpu_stride", 4, ""],
    ["slot_stride", 4, ""],
    ["counters", 8, ""],
    ["magazine_size", 4, ""],
    ["depot_limit", 4, ""],
    ["trim_interval_ms", 4, ""],
    ["class_size", 4, "class_count"],
    ["block_bytes", 4, "class_count"],
    ["foreign_frees", 8, ""],
    ["double_frees", 8, ""],
    ["bad_cpu", 8, ""],
    ["refreshes", 8, ""],
    ["high_water", 8, "slots_per_cpu"],
    ["modules", 8, "module_slots"],
    ["module_slots", 4, ""],
    ["module_stats_offset", 4, ""],
    ["detached_totals", 8, ""],
    ["final_counters", 0, "slots_per_cpu"]
];

// Root fields that are pointers (read as addresses, not numbers).
var POINTER_FIELDS = ["counters", "modules", "detached_totals"];

// Fields of COUNTER_TYPE (each an AtomicU64 = 8 bytes), in the pool's documented order.
var COUNTER_FIELDS = [
    "total_allocates",
    "allocate_misses",
    "total_frees",
    "free_misses",
    "depth",
    "depot_gets",
    "depot_puts",
    "system_allocs",
    "system_frees",
    "oversize",
    "failures",
    "injected",
    "trimmed",
    "flushed"
];

// Fields of FILTER_TYPE (each an AtomicU64), the filter's per-module data-path counters, in layout order.
var FILTER_FIELDS = [
    "send_nbls_transformed",
    "send_nbs_transformed",
    "recv_nbls_transformed",
    "recv_nbs_transformed",
    "bytes_written",
    "retreat_failures",
    "context_failures",
    "send_nbls_failed",
    "send_nbls_paused",
    "recv_nbls_dropped",
    "restores_advanced",
    "restores_manual",
    "restores_inconsistent",
    "pattern_mismatches",
    "vlan_already_tagged",
    "vlan_untouched_nbls",
    "passthrough_nbls",
    "config_bad_values",
    "config_open_failures",
    "oids_forwarded",
    "oid_clone_failures",
    "pauses_pended"
];

var STATE_NAMES = ["empty", "initialised", "running", "unloaded"];

function isPointerField(name) {
    for (var i = 0; i < POINTER_FIELDS.length; i++) {
        if (POINTER_FIELDS[i] === name) {
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------------------------------------------------
// Plain functions (no debugger objects): aggregation.
// ---------------------------------------------------------------------------------------------------------

function zeroCounters() {
    var c = {};
    for (var i = 0; i < COUNTER_FIELDS.length; i++) {
        c[COUNTER_FIELDS[i]] = 0;
    }
    return c;
}

function addCounters(into, from) {
    for (var i = 0; i < COUNTER_FIELDS.length; i++) {
        var f = COUNTER_FIELDS[i];
        var v = from[f];
        if (typeof v !== "number" || !isFinite(v)) {
            throw new Error("counter " + f + " is missing or not a number");
        }
        into[f] += v;
    }
    return into;
}

// Hit rate in percent, or null when there were no operations (printed as "-").
function hitRate(total, misses) {
    if (total <= 0) {
        return null;
    }
    return ((total - misses) * 100) / total;
}

// Values derived from summed counters (the same arithmetic as the pool's own snapshot):
//   in flight  = successful allocations - frees = (total_allocates - failures) - total_frees
//   live       = blocks constructed - blocks returned to the system = system_allocs - system_frees
//   retained   = live - in flight  (cached in per-CPU magazines or in the depot)
//   depot      = retained - depth  (depth = blocks in per-CPU magazines)
function derive(row, blockBytes) {
    row.in_flight = row.total_allocates - row.failures - row.total_frees;
    row.live_blocks = row.system_allocs - row.system_frees;
    row.retained_blocks = row.live_blocks - row.in_flight;
    row.magazine_blocks = row.depth;
    row.depot_blocks = row.retained_blocks - row.depth;
    row.retained_bytes = blockBytes === null ? null : row.retained_blocks * blockBytes;
    row.alloc_hit = hitRate(row.total_allocates, row.allocate_misses);
    row.free_hit = hitRate(row.total_frees, row.free_misses);
    return row;
}

function checkDump(dump) {
    if (!dump || dump.format !== "mdlpool-stats-dump") {
        throw new Error("not an mdlpool stats dump (format field)");
    }
    if (dump.version !== SUPPORTED_VERSION) {
        throw new Error("stats root version " + dump.version + " (this script reads version " + SUPPORTED_VERSION + ")");
    }
    if (dump.slots_per_cpu !== dump.class_count + 1) {
        throw new Error("slots_per_cpu " + dump.slots_per_cpu + " != class_count + 1");
    }
    if (dump.state !== 3 && dump.counters.length !== dump.cpu_count) {
        throw new Error("counters has " + dump.counters.length + " CPUs, cpu_count is " + dump.cpu_count);
    }
}

// Sums a dump into per-class rows, per-CPU rows and a total row.
// Unloaded: the per-CPU arrays are gone (freed by the pool); the classes come from final_counters.
function aggregate(dump) {
    checkDump(dump);
    var slots = dump.slots_per_cpu;
    var live = dump.state !== 3 && dump.counters.length > 0;
    var classes = [];
    var s, c;
    for (s = 0; s < slots; s++) {
        var oversize = s === dump.class_count;
        var row = zeroCounters();
        if (live) {
            for (c = 0; c < dump.counters.length; c++) {
                if (dump.counters[c].length !== slots) {
                    throw new Error("CPU " + c + " has " + dump.counters[c].length + " slots, expected " + slots);
                }
                addCounters(row, dump.counters[c][s]);
            }
        } else {
            addCounters(row, dump.final_counters[s]);
        }
        row.label = oversize ? "over" : String(s);
        row.size = oversize ? null : dump.class_size[s];
        row.block_bytes = oversize ? null : dump.block_bytes[s];
        // Oversize blocks are never cached, so they never count towards retained bytes.
        derive(row, oversize ? 0 : row.block_bytes);
        row.high_water = dump.high_water ? dump.high_water[s] : null;
        classes.push(row);
    }
    var cpus = [];
    if (live) {
        for (c = 0; c < dump.counters.length; c++) {
            var crow = zeroCounters();
            for (s = 0; s < slots; s++) {
                addCounters(crow, dump.counters[c][s]);
            }
            crow.label = String(c);
            derive(crow, null);
            crow.retained_bytes = null;
            cpus.push(crow);
        }
    }
    var total = zeroCounters();
    var retainedBytes = 0;
    var highWater = dump.high_water ? 0 : null;
    for (s = 0; s < classes.length; s++) {
        addCounters(total, classes[s]);
        retainedBytes += classes[s].retained_bytes;
        if (highWater !== null) {
            highWater += classes[s].high_water;
        }
    }
    total.label = "Total";
    total.size = null;
    total.block_bytes = null;
    derive(total, null);
    total.retained_bytes = retainedBytes;
    // Sum of the per-class high-water marks (as the pool's own snapshot sums them): an upper bound of
    // the blocks that ever existed at once.
    total.high_water = highWater;
    var modules = null;
    if (dump.modules !== undefined && dump.detached_totals !== undefined) {
        modules = aggregateModules(dump.modules, dump.detached_totals);
    }
    return {
        version: dump.version,
        state: dump.state,
        state_name: STATE_NAMES[dump.state] || ("unknown(" + dump.state + ")"),
        cpu_count: dump.cpu_count,
        class_count: dump.class_count,
        magazine_size: dump.magazine_size,
        depot_limit: dump.depot_limit,
        trim_interval_ms: dump.trim_interval_ms,
        live: live,
        foreign_frees: dump.foreign_frees,
        double_frees: dump.double_frees,
        bad_cpu: dump.bad_cpu,
        refreshes: dump.refreshes,
        classes: classes,
        cpus: cpus,
        total: total,
        modules: modules
    };
}

// Data-path rows: one per attached module, the detached modules' totals, and the sum of both.
function aggregateModules(modules, detached) {
    var rows = [];
    var total = {};
    var i, j, f;
    for (j = 0; j < FILTER_FIELDS.length; j++) {
        total[FILTER_FIELDS[j]] = 0;
    }
    var all = modules.concat([{ slot: null, counters: detached }]);
    for (i = 0; i < all.length; i++) {
        var row = { label: all[i].slot === null ? "detached" : "m" + all[i].slot };
        for (j = 0; j < FILTER_FIELDS.length; j++) {
            f = FILTER_FIELDS[j];
            var v = all[i].counters[f];
            if (typeof v !== "number" || !isFinite(v)) {
                throw new Error("data-path counter " + f + " is missing or not a number");
            }
            row[f] = v;
            total[f] += v;
        }
        rows.push(row);
    }
    total.label = "Total";
    return { rows: rows, total: total, attached: modules.length };
}

// ---------------------------------------------------------------------------------------------------------
// Plain functions: formatting. The one definition of the table, for WinDbg and for Linux (node).
// ---------------------------------------------------------------------------------------------------------

function padLeft(text, width) {
    var s = String(text);
    while (s.length < width) {
        s = " " + s;
    }
    return s;
}

function padRight(text, width) {
    var s = String(text);
    while (s.length < width) {
        s = s + " ";
    }
    return s;
}

function fmtInt(v) {
    return v === null || v === undefined ? "-" : String(v);
}

function fmtRate(v) {
    return v === null || v === undefined ? "-" : v.toFixed(2) + "%";
}

// Columns of the class table: [header, width, function(row) -> text]. First column left-aligned.
var CLASS_COLUMNS = [
    ["Class", 5, function (r) { return r.label; }],
    ["Size", 5, function (r) { return fmtInt(r.size); }],
    ["Block", 5, function (r) { return fmtInt(r.block_bytes); }],
    ["TotalAllocs", 12, function (r) { return fmtInt(r.total_allocates); }],
    ["AllocMisses", 11, function (r) { return fmtInt(r.allocate_misses); }],
    ["AllocHit", 8, function (r) { return fmtRate(r.alloc_hit); }],
    ["TotalFrees", 12, function (r) { return fmtInt(r.total_frees); }],
    ["FreeMisses", 10, function (r) { return fmtInt(r.free_misses); }],
    ["FreeHit", 8, function (r) { return fmtRate(r.free_hit); }],
    ["Magazine", 8, function (r) { return fmtInt(r.magazine_blocks); }],
    ["Depot", 6, function (r) { return fmtInt(r.depot_blocks); }],
    ["InFlight", 8, function (r) { return fmtInt(r.in_flight); }],
    ["Retained", 8, function (r) { return fmtInt(r.retained_blocks); }],
    ["RetainedBytes", 13, function (r) { return fmtInt(r.retained_bytes); }],
    ["HighWater", 9, function (r) { return fmtInt(r.high_water); }]
];

// Per-CPU table: the same counters without the class-only columns.
var CPU_COLUMNS = [
    ["CPU", 5, function (r) { return r.label; }],
    ["TotalAllocs", 12, function (r) { return fmtInt(r.total_allocates); }],
    ["AllocMisses", 11, function (r) { return fmtInt(r.allocate_misses); }],
    ["AllocHit", 8, function (r) { return fmtRate(r.alloc_hit); }],
    ["TotalFrees", 12, function (r) { return fmtInt(r.total_frees); }],
    ["FreeMisses", 10, function (r) { return fmtInt(r.free_misses); }],
    ["FreeHit", 8, function (r) { return fmtRate(r.free_hit); }],
    ["Magazine", 8, function (r) { return fmtInt(r.magazine_blocks); }],
    ["DepotGets", 9, function (r) { return fmtInt(r.depot_gets); }],
    ["DepotPuts", 9, function (r) { return fmtInt(r.depot_puts); }],
    ["SysAllocs", 9, function (r) { return fmtInt(r.system_allocs); }],
    ["SysFrees", 9, function (r) { return fmtInt(r.system_frees); }],
    ["Failures", 8, function (r) { return fmtInt(r.failures); }]
];

function formatRows(columns, rows) {
    var lines = [];
    var header = "";
    var i, j;
    for (j = 0; j < columns.length; j++) {
        header += j === 0 ? padRight(columns[j][0], columns[j][1]) : " " + padLeft(columns[j][0], columns[j][1]);
    }
    lines.push(header);
    for (i = 0; i < rows.length; i++) {
        var line = "";
        for (j = 0; j < columns.length; j++) {
            var text = columns[j][2](rows[i]);
            line += j === 0 ? padRight(text, columns[j][1]) : " " + padLeft(text, columns[j][1]);
        }
        lines.push(line);
    }
    return lines;
}

// Data-path table (the filter's per-module counters).
var MODULE_COLUMNS = [
    ["Module", 8, function (r) { return r.label; }],
    ["SendNBLs", 10, function (r) { return fmtInt(r.send_nbls_transformed); }],
    ["SendNBs", 10, function (r) { return fmtInt(r.send_nbs_transformed); }],
    ["RecvNBLs", 10, function (r) { return fmtInt(r.recv_nbls_transformed); }],
    ["RecvNBs", 10, function (r) { return fmtInt(r.recv_nbs_transformed); }],
    ["BytesWritten", 12, function (r) { return fmtInt(r.bytes_written); }],
    ["RetreatFail", 11, function (r) { return fmtInt(r.retreat_failures); }],
    ["CtxFail", 7, function (r) { return fmtInt(r.context_failures); }],
    ["SendFail", 8, function (r) { return fmtInt(r.send_nbls_failed); }],
    ["Paused", 7, function (r) { return fmtInt(r.send_nbls_paused); }],
    ["Dropped", 7, function (r) { return fmtInt(r.recv_nbls_dropped); }],
    ["RestoreAdv", 10, function (r) { return fmtInt(r.restores_advanced); }],
    ["RestoreMan", 10, function (r) { return fmtInt(r.restores_manual); }],
    ["RestoreBad", 10, function (r) { return fmtInt(r.restores_inconsistent); }],
    ["PatternBad", 10, function (r) { return fmtInt(r.pattern_mismatches); }],
    ["Passthru", 8, function (r) { return fmtInt(r.passthrough_nbls); }]
];

function formatModules(m) {
    var rows = m.rows.slice();
    rows.push(m.total);
    var t = m.total;
    return ["data path: " + m.attached + " attached module(s) (m<slot>), then the modules that have detached"]
        .concat(formatRows(MODULE_COLUMNS, rows))
        .concat([
            "vlan already tagged " + t.vlan_already_tagged + ", vlan untouched " + t.vlan_untouched_nbls +
                ", config bad values " + t.config_bad_values + ", config open failures " + t.config_open_failures +
                ", OIDs forwarded " + t.oids_forwarded + " (clone failures " + t.oid_clone_failures +
                "), pauses pended " + t.pauses_pended
        ]);
}

function formatHeader(agg) {
    return "mdlpool statistics: root v" + agg.version + ", " + agg.state_name + ", " + agg.cpu_count + " CPUs, " +
        agg.class_count + " size classes + oversize, magazine " + agg.magazine_size + ", depot limit " +
        agg.depot_limit + ", trim every " + agg.trim_interval_ms + " ms";
}

function formatFooter(agg) {
    var t = agg.total;
    return [
        "system allocs " + t.system_allocs + ", system frees " + t.system_frees + ", live blocks " + t.live_blocks +
            ", oversize " + t.oversize + ", failures " + t.failures + " (injected " + t.injected + ")",
        "depot gets " + t.depot_gets + ", depot puts " + t.depot_puts + ", trimmed " + t.trimmed +
            ", flushed " + t.flushed,
        "foreign frees " + fmtInt(agg.foreign_frees) + ", double frees " + fmtInt(agg.double_frees) +
            ", bad CPU " + fmtInt(agg.bad_cpu) + " (high water and these: as of refresh " + fmtInt(agg.refreshes) + ")"
    ];
}

// The `!lookaside`-like table: one row per size class, the oversize row, then the total.
function formatClassTable(agg) {
    var rows = agg.classes.slice();
    rows.push(agg.total);
    var lines = [formatHeader(agg)];
    if (!agg.live) {
        lines.push("(driver unloaded: final totals kept in the image at unload; per-CPU counters are gone)");
    }
    lines = lines.concat(formatRows(CLASS_COLUMNS, rows)).concat(formatFooter(agg));
    if (agg.modules !== null) {
        lines = lines.concat(formatModules(agg.modules));
    }
    return lines.join("\n") + "\n";
}

// One row per CPU (summed over classes), then the total.
function formatCpuTable(agg) {
    var lines = [formatHeader(agg)];
    if (!agg.live) {
        lines.push("(driver unloaded: no per-CPU counters)");
        return lines.join("\n") + "\n";
    }
    var rows = agg.cpus.slice();
    rows.push(agg.total);
    lines = lines.concat(formatRows(CPU_COLUMNS, rows));
    return lines.join("\n") + "\n";
}

// Machine-readable figures: one "<row>.<name> <value>" line per figure, rows "total" and "class.<label>"
// (for the Rust tests and tools that compare the script's arithmetic with the pool's own snapshot).
var FIGURES = COUNTER_FIELDS.concat(["in_flight", "live_blocks", "retained_blocks", "magazine_blocks",
    "depot_blocks", "retained_bytes", "high_water"]);

function figuresText(agg) {
    var lines = [];
    var rows = agg.classes.concat([agg.total]);
    for (var i = 0; i < rows.length; i++) {
        var prefix = rows[i] === agg.total ? "total" : "class." + rows[i].label;
        for (var j = 0; j < FIGURES.length; j++) {
            lines.push(prefix + "." + FIGURES[j] + " " + fmtInt(rows[i][FIGURES[j]]));
        }
    }
    if (agg.modules !== null) {
        for (var k = 0; k < FILTER_FIELDS.length; k++) {
            lines.push("datapath.total." + FILTER_FIELDS[k] + " " + agg.modules.total[FILTER_FIELDS[k]]);
        }
        lines.push("datapath.attached " + agg.modules.attached);
    }
    lines.push("state " + agg.state);
    return lines.join("\n") + "\n";
}

// What `!mdlpool [cpu]` and `node mdlpool.js --render` print.
function render(dump, options) {
    var agg = aggregate(dump);
    if (options && options.cpu) {
        return formatCpuTable(agg);
    }
    return formatClassTable(agg);
}

// ---------------------------------------------------------------------------------------------------------
// Debugger side: read the stats root of the loaded mdlpool image into a dump object.
// ---------------------------------------------------------------------------------------------------------

// Converts a debugger value (JS number or host.Int64) to a JS number: exact below 2^53, rounded above
// (a counter that large would take decades to reach).
function toNumber(v) {
    if (typeof v === "number") {
        return v;
    }
    if (v && typeof v.convertToNumber === "function") {
        return v.convertToNumber();
    }
    return Number(v);
}

// Offset of `field` in the debugger type `type`, failing loudly if the PDB lacks it.
function fieldOffset(type, typeName, field) {
    var f = type.fields[field];
    if (f === undefined) {
        throw new Error(typeName + " has no field '" + field + "' in the loaded PDB (script and driver disagree)");
    }
    return toNumber(f.offset);
}

// `mem` is the memory the dump is read from, with addresses kept opaque (kernel addresses do not fit in
// a JS number): { add(address, bytes) -> address, isNull(address) -> bool, readPointer(address) -> address,
// read(address, count, size, signed) -> array of numbers (size 1, 4 or 8) }. `layout` gives field offsets by name
// (from the PDB in the debugger). Kept apart from `host` so that the node test runs it over a fake memory.
function readDump(mem, layout, rootAddress) {
    var ro = layout.root;
    var co = layout.counter;
    function at(name) {
        return mem.add(rootAddress, ro[name]);
    }
    var magicBytes = mem.read(at("magic"), 8, 1);
    var magic = "";
    var i;
    for (i = 0; i < magicBytes.length; i++) {
        magic += String.fromCharCode(magicBytes[i]);
    }
    if (magic !== ROOT_MAGIC_TEXT) {
        throw new Error("MdlPoolStats magic is '" + magic + "', not '" + ROOT_MAGIC_TEXT + "' (wrong symbols?)");
    }
    var dump = { format: "mdlpool-stats-dump" };
    for (i = 1; i < ROOT_FIELDS.length; i++) {
        var name = ROOT_FIELDS[i][0];
        if (ROOT_FIELDS[i][2] === "" && !isPointerField(name)) {
            dump[name] = mem.read(at(name), 1, ROOT_FIELDS[i][1])[0];
        }
    }
    if (dump.version !== SUPPORTED_VERSION) {
        throw new Error("stats root version " + dump.version + " (this script reads version " + SUPPORTED_VERSION + ")");
    }
    function readCounters(address) {
        var c = {};
        for (var k = 0; k < COUNTER_FIELDS.length; k++) {
            // depth is kept as a wrapping u64 per CPU and is exact only in the sum: read it signed.
            var f = COUNTER_FIELDS[k];
            c[f] = mem.read(mem.add(address, co[f]), 1, 8, f === "depth")[0];
        }
        return c;
    }
    dump.class_size = mem.read(at("class_size"), dump.class_count, 4);
    dump.block_bytes = mem.read(at("block_bytes"), dump.class_count, 4);
    dump.high_water = mem.read(at("high_water"), dump.slots_per_cpu, 8);
    dump.final_counters = [];
    for (i = 0; i < dump.slots_per_cpu; i++) {
        dump.final_counters.push(readCounters(mem.add(at("final_counters"), i * layout.counter_size)));
    }
    function readFilter(address) {
        var c = {};
        for (var k = 0; k < FILTER_FIELDS.length; k++) {
            c[FILTER_FIELDS[k]] = mem.read(mem.add(address, layout.filter[FILTER_FIELDS[k]]), 1, 8)[0];
        }
        return c;
    }
    dump.modules = [];
    var list = mem.readPointer(at("modules"));
    if (!mem.isNull(list)) {
        for (i = 0; i < dump.module_slots; i++) {
            var module = mem.readPointer(mem.add(list, 8 * i));
            if (!mem.isNull(module)) {
                dump.modules.push({ slot: i, counters: readFilter(mem.add(module, dump.module_stats_offset)) });
            }
        }
    }
    var detached = mem.readPointer(at("detached_totals"));
    dump.detached_totals = mem.isNull(detached) ? readFilterZero() : readFilter(detached);
    dump.counters = [];
    var base = mem.readPointer(at("counters"));
    if (dump.state !== 3 && !mem.isNull(base)) {
        for (var cpu = 0; cpu < dump.cpu_count; cpu++) {
            var row = [];
            for (var s = 0; s < dump.slots_per_cpu; s++) {
                row.push(readCounters(mem.add(base, cpu * dump.cpu_stride + s * dump.slot_stride)));
            }
            dump.counters.push(row);
        }
    }
    return dump;
}

function readFilterZero() {
    var c = {};
    for (var k = 0; k < FILTER_FIELDS.length; k++) {
        c[FILTER_FIELDS[k]] = 0;
    }
    return c;
}

// WinDbg only: the layout from the PDB and a memory reader over host.memory (addresses as host.Int64).
function readDumpFromDebugger() {
    var rootType = host.getModuleType(MODULE_NAME, ROOT_TYPE);
    var counterType = host.getModuleType(MODULE_NAME, COUNTER_TYPE);
    var filterType = host.getModuleType(MODULE_NAME, FILTER_TYPE);
    var layout = { root: {}, counter: {}, filter: {}, counter_size: toNumber(counterType.size) };
    var i;
    for (i = 0; i < ROOT_FIELDS.length; i++) {
        layout.root[ROOT_FIELDS[i][0]] = fieldOffset(rootType, ROOT_TYPE, ROOT_FIELDS[i][0]);
    }
    for (i = 0; i < COUNTER_FIELDS.length; i++) {
        layout.counter[COUNTER_FIELDS[i]] = fieldOffset(counterType, COUNTER_TYPE, COUNTER_FIELDS[i]);
    }
    for (i = 0; i < FILTER_FIELDS.length; i++) {
        layout.filter[FILTER_FIELDS[i]] = fieldOffset(filterType, FILTER_TYPE, FILTER_FIELDS[i]);
    }
    var mem = {
        add: function (addr, bytes) {
            return addr.add(bytes);
        },
        isNull: function (addr) {
            return addr.compareTo(0) === 0;
        },
        readPointer: function (addr) {
            return host.memory.readMemoryValues(addr, 1, 8)[0];
        },
        read: function (addr, count, size, signed) {
            var values = host.memory.readMemoryValues(addr, count, size, signed === true);
            var out = [];
            for (var k = 0; k < count; k++) {
                out.push(toNumber(values[k]));
            }
            return out;
        }
    };
    return readDump(mem, layout, host.getModuleSymbolAddress(MODULE_NAME, ROOT_SYMBOL));
}

// `!mdlpool [cpu]`
function mdlpool(what) {
    var text = render(readDumpFromDebugger(), { cpu: what === "cpu" });
    var lines = text.split("\n");
    for (var i = 0; i < lines.length; i++) {
        if (lines[i].length > 0 || i + 1 < lines.length) {
            host.diagnostics.debugLog(lines[i] + "\n");
        }
    }
}

// `dx -r2 @$scriptContents.mdlpoolRoot()`: the root as a typed object (the NatVis view applies to it).
function mdlpoolRoot() {
    return host.createTypedObject(host.getModuleSymbolAddress(MODULE_NAME, ROOT_SYMBOL), MODULE_NAME, ROOT_TYPE);
}

// `dx @$scriptContents.mdlpoolDump()`: the dump object, for inspection or scripting.
function mdlpoolDump() {
    return readDumpFromDebugger();
}

function initializeScript() {
    return [
        new host.apiVersionSupport(1, 3),
        new host.functionAlias(mdlpool, "mdlpool")
    ];
}

// ---------------------------------------------------------------------------------------------------------
// node: module exports for the tests, and the `--render` command.
// ---------------------------------------------------------------------------------------------------------
if (typeof module !== "undefined" && module.exports) {
    module.exports = {
        MODULE_NAME: MODULE_NAME,
        ROOT_SYMBOL: ROOT_SYMBOL,
        ROOT_TYPE: ROOT_TYPE,
        COUNTER_TYPE: COUNTER_TYPE,
        ROOT_FIELDS: ROOT_FIELDS,
        COUNTER_FIELDS: COUNTER_FIELDS,
        FILTER_TYPE: FILTER_TYPE,
        FILTER_FIELDS: FILTER_FIELDS,
        aggregate: aggregate,
        derive: derive,
        hitRate: hitRate,
        formatClassTable: formatClassTable,
        formatCpuTable: formatCpuTable,
        figuresText: figuresText,
        render: render,
        readDump: readDump,
        // Debugger entry points (they use the global `host`; the node test supplies a stand-in).
        readDumpFromDebugger: readDumpFromDebugger,
        mdlpool: mdlpool,
        initializeScript: initializeScript
    };
    if (typeof require !== "undefined" && require.main === module) {
        var args = process.argv.slice(2);
        var file = null;
        var opts = { cpu: false, json: false, figures: false };
        for (var a = 0; a < args.length; a++) {
            if (args[a] === "--render") {
                file = args[++a];
            } else if (args[a] === "--cpu") {
                opts.cpu = true;
            } else if (args[a] === "--json") {
                opts.json = true;
            } else if (args[a] === "--figures") {
                opts.figures = true;
            } else {
                process.stderr.write("usage: node mdlpool.js --render <dump.json | -> [--cpu | --json | --figures]\n");
                process.exit(2);
            }
        }
        if (file === null || file === undefined) {
            process.stderr.write("usage: node mdlpool.js --render <dump.json | -> [--cpu | --json | --figures]\n");
            process.exit(2);
        }
        var fs = require("fs");
        var dump = JSON.parse(fs.readFileSync(file === "-" ? 0 : file, "utf8"));
        if (opts.json) {
            process.stdout.write(JSON.stringify(aggregate(dump), null, 1) + "\n");
        } else if (opts.figures) {
            process.stdout.write(figuresText(aggregate(dump)));
        } else {
            process.stdout.write(render(dump, opts));
        }
    }
}
