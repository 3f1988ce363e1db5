import ArgumentParser
import MInferenceCL

/// `minference-bench oclgrind`: every kernel family once on tiny, odd shapes (N = 1, 37, 70,
/// d = 64, mixed-pattern layers, every dtype, fully masked rows, synthetic inputs, planted NaN and
/// infinities), each output checked against the float64 reference. Made to run under Oclgrind
/// (`oclgrind --data-races --uninitialized --check-api --build-options -cl-opt-disable
/// minference-bench oclgrind`), which reports invalid accesses, data races and reads of
/// uninitialised memory; the test suite runs it so (OclgrindTests) and fails on any report.
///
/// The disk cache is off (every program is built by the simulator) and, by default, buffer
/// memory is held until the end: Oclgrind's uninitialised-value check keeps a freed buffer's
/// shadow state and applies it to the next buffer that reuses its id, which reports reads of
/// memory that was written. Prints one line per case, then `kernels: name xN, ...`; exits 1 if
/// any case disagrees with the reference.
struct OclgrindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oclgrind", abstract: "Run every kernel family once on tiny odd shapes (for Oclgrind) and check the results.")

    @Option(name: .long, help: "Device selector (under oclgrind there is only its simulator).")
    var device: String?
    @Option(name: .long, help: "Estimation products: fused (this project's kernels) or clblast.")
    var estimation: String = "fused"
    @Flag(name: .long, inversion: .prefixedNo, help: "Hold every buffer's memory until the end (see the discussion).")
    var holdBuffers = true

    struct Case {
        var name: String
        var problem: AttentionProblem
        var plan: LayerPlan
        var synthetic = false
    }

    static func cases() throws -> [Case] {
        func problem(_ hq: Int, _ hkv: Int, _ nq: Int, _ nk: Int, _ t: DType, out: DType? = nil, causal: Bool = true) throws -> AttentionProblem {
            try AttentionProblem(headsQ: hq, headsKV: hkv, queryLength: nq, keyLength: nk, headDim: 64, inputDType: t, outputDType: out,
                                 causal: causal)
        }
        return [
            Case(name: "mixed layer N=70 f16", problem: try problem(4, 2, 70, 70, .f16),
                 plan: LayerPlan(heads: [.dense, .aShape(sink: 5, window: 20), .verticalSlash(vertical: 4, slash: 4), .blockSparse(blocks: 1)])),
            Case(name: "mixed layer N=37 bf16->f32", problem: try problem(4, 2, 37, 37, .bf16, out: .f32),
                 plan: LayerPlan(heads: [.verticalSlash(vertical: 40, slash: 60), .blockSparse(blocks: 2), .aShape(sink: 64, window: 3), .dense])),
            Case(name: "sparse N=1 f32", problem: try problem(3, 1, 1, 1, .f32),
                 plan: LayerPlan(heads: [.aShape(sink: 4, window: 16), .verticalSlash(vertical: 40, slash: 60), .blockSparse(blocks: 3)])),
            Case(name: "dense Nq=37 > Nk=5 f32 (masked rows)", problem: try problem(2, 1, 37, 5, .f32), plan: .uniform(.dense, heads: 2)),
            Case(name: "dense non-causal Nq=5 Nk=37 f16", problem: try problem(2, 1, 5, 37, .f16, causal: false), plan: .uniform(.dense, heads: 2)),
            Case(name: "synthetic input N=37 f16", problem: try problem(2, 1, 37, 37, .f16), plan: .uniform(.dense, heads: 2), synthetic: true),
        ]
    }

    func run() throws {
        guard let backend = DeviceProfile.EstimationBackend(rawValue: estimation) else {
            throw ValidationError("unknown --estimation '\(estimation)'; use fused or clblast")
        }
        let selector = device.map(DeviceSelector.init) ?? DeviceSelector.fromEnvironment(BenchEnvironment.variables)
        let context = try ComputeContext(selector: selector, diskCache: nil, holdsBufferMemory: holdBuffers)
        let engine = AttentionEngine(context: context, tuningOverride: "path=portable")
        print("device: \(context.device.info.name) (\(context.device.info.platformName)); estimation \(backend)")
        var failures = 0
        let clock = ContinuousClock()
        for c in try Self.cases() {
            let started = clock.now
            let problem = c.problem
            let (q, k, v) = c.synthetic ? try SyntheticInput(seed: 3).generateOnHost(context: context, problem: problem)
                : problem.normalInputs(seed: UInt64(problem.queryLength * 31 + problem.headsQ))
            let rows = (0..<(problem.batch * problem.headsQ)).flatMap { h in (0..<problem.queryLength).map { (h, $0) } }
            let verification = try DeviceChecks.verifiedRun(
                engine: engine, problem: problem, q: q, k: k, v: v, plan: c.plan,
                options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: backend), rows: rows)
            if !verification.passed { failures += 1 }
            let seconds = Double((clock.now - started).components.attoseconds / 10_000_000_000_000_000) / 100 + Double((clock.now - started).components.seconds)
            print("\(verification.passed ? "ok  " : "FAIL") \(c.name): \(c.plan); relative error \(Format.scientific(verification.metrics.relativeL2)) (\(Format.fixed(seconds, 1)) s)")
            for problem in verification.problems.prefix(5) { print("     \(problem)") }
        }
        // The scan and the attention kernels' flag-aware code (the portable path's run-time test,
        // NONFINITE_KEYS 2) on planted NaN and infinities (docs/NON-FINITE.md).
        let planted = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 70, keyLength: 70, headDim: 64, inputDType: .f16)
        let mixed = LayerPlan(heads: [.dense, .aShape(sink: 5, window: 20), .verticalSlash(vertical: 4, slash: 4), .blockSparse(blocks: 1)])
        let outcome = try NonFiniteCheck.check(engine: engine, problem: planted, plan: mixed, count: 5, seed: 7, estimation: backend)
        if !outcome.problems.isEmpty { failures += 1 }
        print("\(outcome.problems.isEmpty ? "ok  " : "FAIL") non-finite inputs N=70 f16: \(mixed); \(outcome.nanRows) of \(outcome.rows) rows NaN")
        for problem in outcome.problems.prefix(5) { print("     \(problem)") }
        let kernels = context.launchCounts.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }
        print("kernels: " + kernels.joined(separator: ", "))
        if failures > 0 {
            print("\(failures) case(s) FAILED")
            throw ExitCode(1)
        }
    }
}
