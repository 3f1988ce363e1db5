import ArgumentParser
import Dispatch
import Glibc
import FoundationEssentials
import MInferenceCL
import Synchronization

/// A layer's heads split across every GPU of the host (tensor parallel, `HeadSplit`), one engine
/// and one thread per device: each device alone, all together, and one device with all heads;
/// the split's output must equal the one-device output bit for bit.
struct MultiCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "multi",
        abstract: "A layer's heads split across every GPU (tensor parallel): times of each device, of all together, of one device.")

    @Option(name: .long, parsing: .upToNextOption) var lengths: [Int] = [131072]
    @Option(name: .long) var heads: Int = 32
    @Option(name: .long) var kvHeads: Int = 8
    @Option(name: .long) var headDim: Int = 128
    @Option(name: .long, parsing: .upToNextOption, help: "dense, vertical-slash, a-shape, block-sparse.")
    var patterns: [String] = ["dense", "vertical-slash", "a-shape", "block-sparse"]
    @Option(name: .long) var seed: UInt64 = 1
    @Option(name: .long) var warmup: Int = 1
    @Option(name: .long) var repeats: Int = 3
    @Flag(name: .long, help: "Split across every OpenCL device, not only the GPUs (a smoke test on CPU runtimes).")
    var allDevices = false
    @Option(name: .long, help: "Contexts per device: 2 splits the heads between two engines of each device (concurrency without a second GPU).")
    var contextsPerDevice = 1
    @Option(name: .long, help: "Seconds the all-devices step may take before the stage of each part is printed and the run stops.")
    var watchdog = 120
    @Option(name: .long, help: "Commit of the code measured (recorded in the results).")
    var commit: String = "unknown"
    @Option(name: .long, help: "Results file (JSON).")
    var out: String = "Benchmarks/results/multi-gpu.json"

    struct Row: Codable {
        var name: String
        var devices: [String]
        var N: Int
        var one_device_ms: Double
        var per_device_ms: [Double]
        var together_ms: Double
        var speedup: Double
        var equal: Bool
        /// ‖split − one device‖ / ‖one device‖ (0 when equal).
        var relative_l2: Double
        var passed: Bool
    }

    func run() throws {
        let gpus = try ComputeDevice.all().filter { allDevices || $0.info.kind == .gpu }
        guard gpus.count * max(1, contextsPerDevice) >= 2 else {
            throw ValidationError("found \(gpus.count) device(s) and \(contextsPerDevice) context(s) per device; the split needs at least 2 engines")
        }
        let engines = try gpus.flatMap { device in
            try (0..<max(1, contextsPerDevice)).map { _ in AttentionEngine(context: try ComputeContext(device: device)) }
        }
        for e in engines { Terminal.line("device \(e.context.device.index): \(e.context.device) \(e.context.wgmma)") }
        let measure = Measurement(warmup: warmup, repeats: repeats)
        var rows: [Row] = []
        var table: [[String]] = []
        for n in lengths {
            let problem = try AttentionProblem(headsQ: heads, headsKV: kvHeads, queryLength: n, keyLength: n, headDim: headDim, inputDType: .f16)
            let split = try HeadSplit(problem: problem, parts: engines.count)
            Terminal.line("N=\(n): inputs...")
            let (dq, dk, dv) = try SyntheticInput(seed: seed).generate(context: engines[0].context, problem: problem)
            let (q, k, v) = (try dq.download(), try dk.download(), try dv.download())
            let whole = try DeviceTensor(context: engines[0].context, shape: problem.queryShape, dtype: .f16)
            let parts = try engines.indices.map { i -> (q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, out: DeviceTensor) in
                let c = engines[i].context
                return (try DeviceTensor(context: c, copying: split.slice(q, part: i, query: true)),
                        try DeviceTensor(context: c, copying: split.slice(k, part: i, query: false)),
                        try DeviceTensor(context: c, copying: split.slice(v, part: i, query: false)),
                        try DeviceTensor(context: c, shape: split.parts[i].problem.queryShape, dtype: .f16))
            }
            for name in patterns {
                guard let kind = HeadPattern.Kind(name: name) else { throw ValidationError("unknown pattern \(name)") }
                let plan = LayerPlan.uniform(RunCommand.pattern(kind), heads: heads)
                let options = SparseOptions(denseFallback: .never)
                @Sendable func runPart(_ i: Int) throws -> PhaseTiming {
                    try engines[i].run(problem: split.parts[i].problem, q: parts[i].q, k: parts[i].k, v: parts[i].v, output: parts[i].out,
                                       plan: split.plan(plan, part: i), options: options).totalTiming
                }
                Terminal.line("N=\(n) \(name): one device...")
                let one = try measure.median {
                    try engines[0].run(problem: problem, q: dq, k: dk, v: dv, output: whole, plan: plan, options: options).totalTiming
                }
                let alone = try engines.indices.map { i in try measure.median { try runPart(i) }.total }
                // All devices at once, one thread each (enqueue, then wait); the time is the host's wall
                // clock from the start until the last device has finished.
                Terminal.line("N=\(n) \(name): each device alone \(alone), all devices...")
                var walls: [Double] = []
                for r in 0..<(warmup + max(1, repeats)) {
                    let failures = Mutex<[String]>([])
                    // Where each part is, for the watchdog: enqueueing (host), waiting (device), done.
                    let stages = Mutex<[Int: String]>([:])
                    let finished = Atomic<Bool>(false)
                    let limit = watchdog
                    DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(limit)) {
                        guard !finished.load(ordering: .acquiring) else { return }
                        Terminal.line("watchdog: after \(limit) s the parts are at \(stages.withLock { $0 }.sorted { $0.key < $1.key })")
                        Glibc.exit(3)
                    }
                    let clock = ContinuousClock(), start = clock.now
                    DispatchQueue.concurrentPerform(iterations: engines.count) { i in
                        do {
                            stages.withLock { $0[i] = "enqueue" }
                            let event = try engines[i].enqueue(problem: split.parts[i].problem, q: parts[i].q, k: parts[i].k, v: parts[i].v,
                                                               output: parts[i].out, plan: split.plan(plan, part: i), options: options)
                            stages.withLock { $0[i] = "wait" }
                            try event.wait()
                            stages.withLock { $0[i] = "done" }
                        } catch { failures.withLock { $0.append("\(error)") } }
                    }
                    finished.store(true, ordering: .releasing)
                    let elapsed = clock.now - start
                    if let failure = failures.withLock({ $0.first }) { throw ValidationError(failure) }
                    if r >= warmup { walls.append(elapsed / .milliseconds(1)) }
                }
                let together = walls.sorted()[walls.count / 2]
                let combined = try split.concatenate(try parts.map { try $0.out.download() })
                let reference = try whole.download()
                let equal = combined == reference
                var metrics = ErrorMetrics()
                let a = combined.floats(), b = reference.floats()
                for row in stride(from: 0, to: a.count, by: headDim) {
                    metrics.add(output: a[row..<(row + headDim)], reference: b[row..<(row + headDim)].map(Double.init))
                }
                // Devices of one kind run the same kernels: bits must match. Mixed devices: within the tolerance.
                let sameKind = Set(engines.map { $0.context.device.info.name }).count == 1
                let passed = sameKind ? equal : metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem)
                rows.append(Row(name: "\(name)-\(RunCommand.label(n))", devices: engines.map { $0.context.device.info.name }, N: n,
                                one_device_ms: one.total, per_device_ms: alone, together_ms: together, speedup: one.total / together,
                                equal: equal, relative_l2: metrics.relativeL2, passed: passed))
                Terminal.line("N=\(n) \(name): one \(one.total) ms, together \(together) ms, equal \(equal)")
                table.append(["\(name)-\(RunCommand.label(n))", Format.fixed(one.total, 2)] + alone.map { Format.fixed($0, 2) }
                             + [Format.fixed(together, 2), Format.fixed(one.total / together, 2) + "x",
                                equal ? "equal bits" : "rel err \(Format.scientific(metrics.relativeL2))" + (passed ? "" : " FAIL")])
            }
        }
        Terminal.progress("done", done: true)
        print(Table(header: ["run", "1 GPU ms"] + engines.indices.map { "GPU \($0) alone ms" } + ["all ms (wall)", "speedup", "output vs 1 GPU"],
                    rows: table).render())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct File: Codable { var commit: String; var command: String; var rows: [Row] }
        try encoder.encode(File(commit: commit, command: CommandLine.arguments.joined(separator: " "), rows: rows)).write(to: URL(fileURLWithPath: out))
        print("wrote \(out)")
        if rows.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
