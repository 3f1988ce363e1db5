import Foundation
import MInferenceCL
import Testing

/// Create/run/destroy cycles of a context, its programs (from a disk cache) and buffers, in a
/// process of their own (`minference-bench soak`) so that its resident set is not the test
/// runner's: RSS must stay within a small bound after the warm-up, every OpenCL object the
/// library made must be released, and every cycle's output must equal the first's. The
/// 10,000-cycle loop is the same command with its defaults (a manual check).
@Suite("Leaks")
struct LeakTests {
    @Test("300 context/program/buffer cycles: no RSS growth, no OpenCL object left")
    func shortSoak() throws {
        let bench = try BuiltExecutable.path("minference-bench")
        let cache = try TemporaryFolder("soak-cache")
        defer { cache.remove() }
        let result = try runProcess(bench, ["soak", "--cycles", "300", "--warmup", "50", "--report-every", "100", "--max-growth-mib", "16",
                                            "--cache-dir", cache.path],
                                    environment: ["MINFERENCECL_TUNING": ""], timeout: 480)
        #expect(!result.timedOut && result.status == 0, "\(result)")
        #expect(result.stdout.contains("live objects at the end: contexts 0, programs 0, kernels 0, buffers 0, events 0"), "\(result.stdout)")
        #expect(result.stdout.contains("ok: no leak"), "\(result.stdout)")
        #expect(result.stdout.contains("cycle 300:"), "\(result.stdout)")
        if let summary = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("soak: ") }) { print(summary) }
    }

    @Test("The soak reports a leak: one buffer kept per cycle fails it")
    func soakDetectsLeaks() throws {
        let bench = try BuiltExecutable.path("minference-bench")
        let cache = try TemporaryFolder("soak-leak")
        defer { cache.remove() }
        let result = try runProcess(bench, ["soak", "--cycles", "5", "--warmup", "1", "--report-every", "5", "--cache-dir", cache.path,
                                            "--inject-leak"], environment: ["MINFERENCECL_TUNING": ""], timeout: 240)
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout.contains("FAIL: OpenCL objects still held: contexts 5, programs "), "\(result.stdout)")
        #expect(result.stdout.contains("buffers 5,"), "\(result.stdout)")
    }
}
