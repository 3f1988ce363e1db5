import ArgumentParser
import MInferenceCL

/// `minference-bench check`: the correctness matrix on the selected device, every kernel path
/// the device runs (wgmma on Hopper, mma.sync on NVIDIA compute capability >= 8.0, the portable
/// path everywhere), against the float64 reference. Exits non-zero on any failure.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check every kernel path against the float64 reference.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, help: "A real-qkv layer folder (q.npy, k.npy, v.npy) to check too.")
    var real: [String] = []
    @Option(name: .long, help: "Query rows checked per case.")
    var rows: Int = 128
    @Flag(name: .long, help: "Only the quick cases.")
    var quick = false
    @Option(name: .long, help: "Only the cases whose name contains this text (e.g. xattention).")
    var only: String?

    var checks: DeviceChecks { DeviceChecks(real: real, rows: rows) }

    func run() throws {
        let engine = try deviceOptions.engine()
        let portable = AttentionEngine(context: engine.context, tuningOverride: "path=portable")
        let mma = AttentionEngine(context: engine.context, tuningOverride: "path=nvidia-mma")
        let info = engine.context.device.info
        print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion)); \(engine.context.wgmma)")
        var table: [[String]] = []
        var failures = 0
        func selected(_ name: String) -> Bool { only.map { name.contains($0) } ?? true }
        var all = try checks.cases(quick: quick).filter { selected($0.name) }
        for folder in real {
            let q = try NPYFile.read(folder + "/q.npy"), k = try NPYFile.read(folder + "/k.npy")
            let heads = q.shape[0]
            all.append(DeviceChecks.Case(name: "real " + folder.split(separator: "/").suffix(2).joined(separator: "/"),
                            problem: try AttentionProblem(q: q.shape, k: k.shape, v: k.shape, dtype: q.dtype),
                            plan: LayerPlan(heads: (0..<heads).map { h in
                                [HeadPattern.verticalSlash(vertical: 64, slash: 256), .aShape(sink: 32, window: 256), .blockSparse(blocks: 6)][h % 3]
                            })))
        }
        /// The default path's engine, then one for every slower path the device also runs.
        func engines(for problem: AttentionProblem) -> [(path: String, engine: AttentionEngine)] {
            let defaultPath = engine.kernelConfig(for: problem).path
            return [("default", engine), ("nvidia-mma", mma), ("portable", portable)].compactMap { name, e in
                let path = e.kernelConfig(for: problem).path
                return name == "default" || (path != defaultPath && path.rawValue == name) ? (path.rawValue, e) : nil
            }
        }
        func record(_ name: String, _ problem: AttentionProblem, path: String, errors: (String, String), problems: [String]) {
            if !problems.isEmpty { failures += 1 }
            table.append([name, "\(problem.inputDType)", "N\(problem.queryLength)/\(problem.keyLength) H\(problem.headsQ)/\(problem.headsKV) d\(problem.headDim)",
                          path, errors.0, errors.1, problems.isEmpty ? "ok" : "FAIL"])
            for problem in problems.prefix(5) { print("  \(name) [\(path)]: \(problem)") }
        }
        for c in all {
            for (path, e) in engines(for: c.problem) {
                let outcome = try checks.check(c, engine: e)
                record(c.name, c.problem, path: path,
                       errors: (Format.scientific(outcome.metrics.relativeL2), Format.scientific(outcome.metrics.maxAbs)), problems: outcome.problems)
            }
        }
        // A key a row does not attend must leave that row's bits alone (compared bit for bit).
        for c in try DeviceChecks.maskedKeyCases() where selected(c.name) {
            for (path, e) in engines(for: c.problem) {
                let problems = try MaskedKeyIndependence.differences(engine: e, problem: c.problem, pattern: c.pattern, key: c.key, seed: 11)
                record(c.name, c.problem, path: path, errors: ("bits", "bits"), problems: problems)
            }
        }
        // A row that reads a NaN or an infinity is NaN; every other row is untouched.
        for c in try DeviceChecks.nonFiniteCases() where selected(c.name) {
            for (path, e) in engines(for: c.problem) {
                let outcome = try NonFiniteCheck.check(engine: e, problem: c.problem, plan: c.plan, count: c.count, seed: 23, tensors: c.tensors)
                record(c.name + " (\(outcome.nanRows)/\(outcome.rows) NaN rows)", c.problem, path: path,
                       errors: (Format.scientific(outcome.metrics.relativeL2), Format.scientific(outcome.metrics.maxAbs)),
                       problems: outcome.problems)
            }
        }
        // A chunk of a prefill gives the whole prompt's index lists and rows.
        for c in try DeviceChecks.chunkCases() where selected(c.name) {
            let (q, k, v) = c.problem.normalInputs(seed: 13)
            let chunk = try AttentionProblem(headsQ: c.problem.headsQ, headsKV: c.problem.headsKV, queryLength: c.problem.keyLength - c.start,
                                             keyLength: c.problem.keyLength, headDim: c.problem.headDim, inputDType: c.problem.inputDType)
            for (path, e) in engines(for: c.problem) {
                let (metrics, problems) = try EngineAPIChecks.chunkAgainstWholePrompt(engine: e, q: q, k: k, v: v, plan: c.plan,
                                                                                     start: c.start, rowStride: 7)
                record(c.name, chunk, path: path, errors: (Format.scientific(metrics.relativeL2), Format.scientific(metrics.maxAbs)),
                       problems: problems)
            }
        }
        // Views in FlashAttention's layout at an offset give the contiguous tensors' bits.
        for c in try DeviceChecks.layoutCases() where selected(c.name) {
            for (path, e) in engines(for: c.problem) {
                let problems = try EngineAPIChecks.tokenMajorAgainstContiguous(engine: e, problem: c.problem, plan: c.plan, seed: 17)
                record(c.name, c.problem, path: path, errors: ("bits", "bits"), problems: problems)
            }
        }
        print(Table(header: ["case", "dtype", "shape", "path", "rel err", "max err", "result"], rows: table).render())
        print(failures == 0 ? "all \(table.count) checks passed" : "\(failures) of \(table.count) checks FAILED")
        if failures > 0 { throw ExitCode(1) }
    }

}
