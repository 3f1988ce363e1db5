import FoundationEssentials
@testable import MInferenceCL
import Testing

/// The kernels on every OpenCL device of the machine, not only the default one the other suites
/// use: PoCL, Intel's OpenCL CPU runtime where `scripts/install-intel-opencl.sh` installed it (CI
/// does), a GPU where there is one. Each device runs the dense kernel, each sparse pattern (indices
/// and outputs against the float64 references) and the real SmolLM2 slices with a mixed-pattern plan.
///
/// `MINFERENCECL_REQUIRE_DEVICES` (comma-separated substrings of platform or device names, e.g.
/// `Intel(R) OpenCL`) names devices that must be present, so a broken install fails the run
/// instead of leaving a device out unnoticed.
@Suite("Every OpenCL device", .serialized)
struct EveryDeviceTests {
    static let variable = "MINFERENCECL_REQUIRE_DEVICES"
    static let devices: [ComputeDevice] = (try? ComputeDevice.all()) ?? []

    @Test("The required devices are present")
    func requiredDevicesArePresent() throws {
        let required = (ProcessInfo.processInfo.environment[Self.variable] ?? "")
            .split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        #expect(!Self.devices.isEmpty, "no OpenCL device found")
        for name in required {
            #expect(Self.devices.contains { $0.info.platformName.contains(name) || $0.info.name.contains(name) },
                    "\(Self.variable) names '\(name)', but the devices are \(Self.devices.map { "\($0.info.platformName): \($0.info.name)" })")
        }
    }

    /// Synthetic cases: dense with GQA at an odd length, then each pattern with its own estimation
    /// path and dtype.
    static let cases: [(name: String, pattern: HeadPattern, hq: Int, hkv: Int, n: Int, d: Int, dtype: DType,
                        estimation: DeviceProfile.EstimationBackend)] = [
        ("dense", .dense, 9, 3, 333, 64, .f16, .fused),
        ("a-shape", .aShape(sink: 7, window: 50), 4, 1, 333, 128, .f16, .fused),
        ("vertical-slash", .verticalSlash(vertical: 30, slash: 100), 4, 1, 777, 128, .f16, .fused),
        ("vertical-slash (CLBlast)", .verticalSlash(vertical: 64, slash: 150), 4, 2, 500, 64, .bf16, .clblast),
        ("block-sparse", .blockSparse(blocks: 3), 6, 3, 500, 64, .f16, .fused),
        ("block-sparse (CLBlast)", .blockSparse(blocks: 4), 4, 2, 640, 128, .bf16, .clblast),
        ("tri-shape", .triShape(sink: 7, window: 50, last: 40), 4, 1, 333, 128, .f16, .fused),
        ("xattention", .defaultXAttention, 4, 2, 700, 64, .f16, .fused),
        ("flexprefill", .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.5)), 4, 2, 700, 64, .bf16, .fused),
    ]

    @Test("Dense and every pattern against the float64 references", arguments: devices)
    func syntheticCases(_ device: ComputeDevice) throws {
        let engine = AttentionEngine(context: try ComputeContext(device: device))
        for c in Self.cases {
            let problem = try AttentionProblem(headsQ: c.hq, headsKV: c.hkv, queryLength: c.n, keyLength: c.n, headDim: c.d,
                                               inputDType: c.dtype)
            let inputs = try RandomInputs(problem: problem, seed: UInt64(c.n * 13 + c.d))
            let check = try SparseCheck(engine: engine, problem: problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                        plan: .uniform(c.pattern, heads: c.hq), estimation: c.estimation)
            #expect(check.verification.passed, "\(device): \(c.name): \(check.verification.problems.joined(separator: "; "))")
            #expect(check.verification.metrics.count > 0)
        }
    }

    @Test("NaN and infinities: rows that read one are NaN, the others keep their bits", arguments: devices)
    func nonFiniteInputs(_ device: ComputeDevice) throws {
        let engine = AttentionEngine(context: try ComputeContext(device: device))
        let cases: [(HeadPattern, DType)] = [(.dense, .bf16), (.aShape(sink: 7, window: 50), .f16), (.verticalSlash(vertical: 30, slash: 100), .f32),
                                             (.blockSparse(blocks: 3), .f16), (.defaultXAttention, .bf16)]
        for (pattern, dtype) in cases {
            let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 333, keyLength: 333, headDim: 64, inputDType: dtype)
            let outcome = try NonFiniteCheck.check(engine: engine, problem: problem, plan: .uniform(pattern, heads: 4), count: 7, seed: 31)
            #expect(outcome.problems.isEmpty, "\(device): \(pattern) \(dtype): \(outcome.problems.joined(separator: "; "))")
        }
    }

    @Test("Real SmolLM2 attention, mixed patterns", arguments: devices)
    func realData(_ device: ComputeDevice) throws {
        let engine = AttentionEngine(context: try ComputeContext(device: device))
        for fixture in ["smollm2-layer03-n300", "smollm2-layer20-n777"] {
            let folder = fixturePath(fixture)
            let q = try NPYFile.read(folder + "/q.npy"), k = try NPYFile.read(folder + "/k.npy"), v = try NPYFile.read(folder + "/v.npy")
            let problem = try AttentionProblem(q: q.shape, k: k.shape, v: v.shape, dtype: q.dtype)
            let plan = LayerPlan(heads: (0..<problem.headsQ).map { h in
                [HeadPattern.verticalSlash(vertical: 40, slash: 120), .aShape(sink: 16, window: 128), .blockSparse(blocks: 3)][h % 3]
            })
            let check = try SparseCheck(engine: engine, problem: problem, q: q, k: k, v: v, plan: plan, estimation: .fused)
            #expect(check.verification.passed, "\(device): \(fixture): \(check.verification.problems.joined(separator: "; "))")
        }
    }
}
