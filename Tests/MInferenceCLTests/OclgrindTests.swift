import Foundation
import MInferenceCL
import Testing

/// Every kernel family under Oclgrind on tiny, odd shapes (`minference-bench oclgrind`), with
/// its checkers on; any report (invalid access, data race, uninitialised value, API error,
/// divergent barrier, a fatal simulator error) fails the test, as does a result that disagrees
/// with the float64 reference or a kernel family that did not run.
///
/// Two runs: this project's kernels (fused estimation) under all checkers, built with
/// -cl-opt-disable because Oclgrind's uninitialised-value checker cannot follow the `freeze`
/// instruction optimised builds contain; and the CLBlast estimation path, optimised, without
/// the uninitialised-value checker (CLBlast frees its own temporary buffers, and Oclgrind then
/// applies a freed buffer's shadow state to the next buffer that reuses its id).
/// Set MINFERENCECL_SKIP_OCLGRIND=1 to skip (CI installs oclgrind: scripts/setup-debian.sh).
@Suite("Kernels under Oclgrind", .enabled(if: ProcessInfo.processInfo.environment["MINFERENCECL_SKIP_OCLGRIND"] != "1"))
struct OclgrindTests {
    struct Run: CustomTestStringConvertible, Sendable {
        var estimation: String
        var checkers: [String]
        var kernels: [String]
        var testDescription: String { "\(estimation) estimation, \(checkers.joined(separator: " "))" }
    }

    static let common = ["dense_attention", "a_shape_attention", "vertical_slash_attention", "block_sparse_attention", "vs_row_stats",
                         "vs_scores", "topk_rows", "vs_convert_indexes", "block_mean_pool", "synthetic_input", "nonfinite_keys",
                         "nonfinite_rows"]
    static let runs = [
        Run(estimation: "fused", checkers: ["--data-races", "--uninitialized", "--check-api", "--build-options", "-cl-opt-disable"],
            kernels: common + ["vs_logits", "block_scores"]),
        Run(estimation: "clblast", checkers: ["--data-races", "--check-api"],
            kernels: common + ["vs_gather_last_queries", "widen_to_float"]),
    ]

    /// What Oclgrind prints when it finds something (it writes nothing else to stderr).
    static let reportMarkers = ["Invalid read", "Invalid write", "Uninitialized value", "uninitialized", "data race", "Data race",
                                "OCLGRIND FATAL", "Oclgrind - ", "divergence", "error", "Error"]

    @Test(arguments: runs)
    func noReports(_ run: Run) throws {
        let oclgrind = ["/usr/bin/oclgrind", "/usr/local/bin/oclgrind"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let simulator = try #require(oclgrind, "oclgrind is not installed (scripts/setup-debian.sh installs it; MINFERENCECL_SKIP_OCLGRIND=1 skips this)")
        let bench = try BuiltExecutable.path("minference-bench")
        let clock = ContinuousClock()
        let started = clock.now
        let result = try runProcess(simulator, run.checkers + [bench, "oclgrind", "--estimation", run.estimation],
                                    environment: ["MINFERENCECL_CACHE_DIR": "off", "MINFERENCECL_DEVICE": "", "MINFERENCECL_TUNING": ""],
                                    timeout: 480)
        let elapsed = clock.now - started
        let reports = result.stderrLines
        let kinds = Set(reports.compactMap { line in Self.reportMarkers.first { line.contains($0) } })
        #expect(!result.timedOut, "oclgrind did not finish in \(elapsed)")
        #expect(reports.isEmpty, "Oclgrind reported \(kinds.sorted()):\n\(reports.prefix(60).joined(separator: "\n"))")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Oclgrind Simulator"), "not run on Oclgrind's device:\n\(result.stdout)")
        let ran = result.stdout.split(separator: "\n").first { $0.hasPrefix("kernels: ") } ?? ""
        for kernel in run.kernels {
            #expect(ran.contains(kernel + " x"), "\(kernel) did not run: \(ran)")
        }
        #expect(!result.stdout.contains("FAIL"), "\(result.stdout)")
        print("oclgrind \(run.testDescription): \(run.kernels.count) kernel families, \(elapsed)")
    }
}
