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

    var checks: DeviceChecks { DeviceChecks(real: real, rows: rows) }

    func run() throws {
        let engine = try deviceOptions.engine()
        let portable = AttentionEngine(context: engine.context, tuningOverride: "path=portable")
        let mma = AttentionEngine(context: engine.context, tuningOverride: "path=nvidia-mma")
        let info = engine.context.device.info
        print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion)); \(engine.context.wgmma)")
        var table: [[String]] = []
        var failures = 0
        var all = try checks.cases(quick: quick)
        for folder in real {
            let q = try NPYFile.read(folder + "/q.npy"), k = try NPYFile.read(folder + "/k.npy")
            let heads = q.shape[0]
            all.append(DeviceChecks.Case(name: "real " + folder.split(separator: "/").suffix(2).joined(separator: "/"),
                            problem: try AttentionProblem(q: q.shape, k: k.shape, v: k.shape, dtype: q.dtype),
                            plan: LayerPlan(heads: (0..<heads).map { h in
                                [HeadPattern.verticalSlash(vertical: 64, slash: 256), .aShape(sink: 32, window: 256), .blockSparse(blocks: 6)][h % 3]
                            })))
        }
        for c in all {
            // The default path, then every slower path the device also runs.
            for (pathName, e) in [("default", engine), ("nvidia-mma", mma), ("portable", portable)] {
                let config = e.kernelConfig(for: c.problem)
                let defaultPath = engine.kernelConfig(for: c.problem).path
                if pathName != "default" && (config.path == defaultPath || config.path.rawValue != pathName) { continue }
                let outcome = try checks.check(c, engine: e)
                if !outcome.passed { failures += 1 }
                table.append([c.name, "\(c.problem.inputDType)", "N\(c.problem.queryLength)/\(c.problem.keyLength) H\(c.problem.headsQ)/\(c.problem.headsKV) d\(c.problem.headDim)",
                              config.path.rawValue, Format.scientific(outcome.metrics.relativeL2), Format.scientific(outcome.metrics.maxAbs),
                              outcome.passed ? "ok" : "FAIL"])
                for problem in outcome.problems.prefix(5) { print("  \(c.name) [\(config.path.rawValue)]: \(problem)") }
            }
        }
        // A key a row does not attend must leave that row's bits alone (compared bit for bit).
        for c in try DeviceChecks.maskedKeyCases() {
            for (pathName, e) in [("default", engine), ("nvidia-mma", mma), ("portable", portable)] {
                let config = e.kernelConfig(for: c.problem)
                let defaultPath = engine.kernelConfig(for: c.problem).path
                if pathName != "default" && (config.path == defaultPath || config.path.rawValue != pathName) { continue }
                let problems = try MaskedKeyIndependence.differences(engine: e, problem: c.problem, pattern: c.pattern, key: c.key, seed: 11)
                if !problems.isEmpty { failures += 1 }
                table.append([c.name, "\(c.problem.inputDType)", "N\(c.problem.queryLength)/\(c.problem.keyLength) H\(c.problem.headsQ)/\(c.problem.headsKV) d\(c.problem.headDim)",
                              config.path.rawValue, "bits", "bits", problems.isEmpty ? "ok" : "FAIL"])
                for problem in problems.prefix(5) { print("  \(c.name) [\(config.path.rawValue)]: \(problem)") }
            }
        }
        print(Table(header: ["case", "dtype", "shape", "path", "rel err", "max err", "result"], rows: table).render())
        print(failures == 0 ? "all \(table.count) checks passed" : "\(failures) of \(table.count) checks FAILED")
        if failures > 0 { throw ExitCode(1) }
    }

}
