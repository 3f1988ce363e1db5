import ArgumentParser
import FoundationEssentials
import MInferenceCL
#if canImport(Glibc)
import Glibc
#endif

/// `minference-bench soak`: create, run and destroy a context with its programs and buffers many
/// times (the reliability issue's 10,000 cycles) and watch the process for leaks: the resident
/// set size (/proc/self/statm) after a warm-up, and the OpenCL objects the library holds
/// (`LiveObjects`), which must all be released at the end. Every cycle's output must equal the
/// first cycle's bit for bit. Exits 1 on growth beyond `--max-growth-mib`, a leaked object or a
/// changed output. The test suite runs a short soak (LeakTests); the full loop is a manual check.
struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak", abstract: "Create/run/destroy contexts, programs and buffers in a loop and check for leaks.")

    @Option(name: .long, help: "Device selector.")
    var device: String?
    @Option(name: .long, help: "Cycles to run.")
    var cycles: Int = 10_000
    @Option(name: .long, help: "Cycles before the baseline RSS is taken (allocator and driver caches fill up).")
    var warmup: Int = 50
    @Option(name: .long, help: "Largest RSS growth allowed after the warm-up, in MiB.")
    var maxGrowthMib: Double = 16
    @Option(name: .long, help: "Print a line every this many cycles.")
    var reportEvery: Int = 500
    @Option(name: .long, help: "Program cache folder (default: a fresh temporary one, removed at the end; 'off': none).")
    var cacheDir: String?
    @Flag(name: .long, help: "Keep one buffer (and so its context) alive per cycle: checks that the soak reports a leak.")
    var injectLeak = false

    func validate() throws {
        guard cycles > warmup, warmup >= 1 else { throw ValidationError("--cycles must exceed --warmup, which must be at least 1") }
        guard reportEvery >= 1, maxGrowthMib >= 0 else { throw ValidationError("--report-every must be >= 1 and --max-growth-mib >= 0") }
    }

    func run() throws {
        let selector = device.map(DeviceSelector.init) ?? DeviceSelector.fromEnvironment(BenchEnvironment.variables)
        let chosen = try selector.select(from: ComputeDevice.all())
        let temporary = cacheDir == nil ? "/tmp/minference-soak-\(getpid())" : nil
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let cache: DiskProgramCache? = cacheDir == "off" ? nil : DiskProgramCache(directory: cacheDir ?? temporary!)
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 70, keyLength: 70, headDim: 64, inputDType: .f16)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 5, window: 20), .verticalSlash(vertical: 4, slash: 4), .blockSparse(blocks: 1)])
        let (q, k, v) = problem.normalInputs(seed: 70)
        let options = SparseOptions(denseFallback: .never, estimation: .fused)
        print("device: \(chosen.info.name); \(cycles) cycles of: open a context, build 7 programs (disk cache \(cache?.directory ?? "off")), run \(plan) and dense on \(problem), read back, release")

        let clock = ContinuousClock()
        let started = clock.now
        var first: (sparse: Tensor, dense: Tensor)?
        var baseline = 0
        var samples: [(cycle: Int, rss: Int)] = []
        var leaked: [DeviceBuffer] = []
        for cycle in 1...cycles {
            try autoreleasing {
                let context = try ComputeContext(device: chosen, diskCache: cache)
                let engine = AttentionEngine(context: context, tuningOverride: "path=portable")
                let sparse = try engine.run(q: q, k: k, v: v, plan: plan, options: options).output
                let dense = try engine.dense(q: q, k: k, v: v).output
                if injectLeak { leaked.append(try DeviceBuffer(context: context, byteCount: 1 << 16, label: "leaked on purpose")) }
                if let first {
                    guard first.sparse == sparse, first.dense == dense else { throw BenchError("cycle \(cycle): the output differs from cycle 1") }
                } else {
                    first = (sparse, dense)
                }
            }
            if cycle == warmup { baseline = Self.residentBytes() }
            if cycle >= warmup { samples.append((cycle, Self.residentBytes())) }
            if cycle % reportEvery == 0 || cycle == cycles {
                let seconds = Double((clock.now - started).components.seconds)
                print("cycle \(cycle): RSS \(Self.mib(Self.residentBytes())) MiB (baseline \(Self.mib(baseline)) MiB at cycle \(warmup)); live \(LiveObjects.now); \(Int(seconds)) s")
            }
        }
        let live = LiveObjects.now
        let final = Self.residentBytes()
        let growth = Double(final - baseline) / 1_048_576
        let slope = Self.slope(samples) * 1000 / 1024
        print("soak: \(cycles) cycles; RSS \(Self.mib(baseline)) MiB after \(warmup) cycles, \(Self.mib(final)) MiB at the end (growth \(String(format: growth)) MiB, trend \(String(format: slope)) KiB per 1000 cycles); live objects at the end: \(live)")
        var failures: [String] = []
        if live != .none { failures.append("OpenCL objects still held: \(live)") }
        if growth > maxGrowthMib { failures.append("RSS grew \(String(format: growth)) MiB, more than \(maxGrowthMib)") }
        if !failures.isEmpty {
            print("FAIL: " + failures.joined(separator: "; "))
            release(leaked)
            throw ExitCode(1)
        }
        print("ok: no leak")
        release(leaked)
    }

    /// Runs `body` so that everything it allocates is released when it returns.
    private func autoreleasing(_ body: () throws -> Void) rethrows { try body() }

    /// Keeps `leaked` alive until here.
    private func release(_ leaked: [DeviceBuffer]) { withExtendedLifetime(leaked) {} }

    static func residentBytes() -> Int {
        guard let data = FileManager.default.contents(atPath: "/proc/self/statm"),
              let text = String(data: data, encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func mib(_ bytes: Int) -> String { String(format: Double(bytes) / 1_048_576) }

    /// Least-squares slope of RSS over cycles, in bytes per cycle.
    static func slope(_ samples: [(cycle: Int, rss: Int)]) -> Double {
        guard samples.count > 1 else { return 0 }
        let n = Double(samples.count)
        let mx = samples.reduce(0) { $0 + Double($1.cycle) } / n, my = samples.reduce(0) { $0 + Double($1.rss) } / n
        let sxy = samples.reduce(0) { $0 + (Double($1.cycle) - mx) * (Double($1.rss) - my) }
        let sxx = samples.reduce(0) { $0 + (Double($1.cycle) - mx) * (Double($1.cycle) - mx) }
        return sxx > 0 ? sxy / sxx : 0
    }
}

extension String {
    /// One decimal place.
    init(format value: Double) {
        self = Format.fixed(value, 1)
    }
}
