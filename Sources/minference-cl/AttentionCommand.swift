import ArgumentParser
import MInferenceCL

struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention of q/k/v .npy files, written to an .npy file.",
        discussion: "q is [H, N, d] or [B, H, N, d]; k and v are [Hkv, N, d] or [B, Hkv, N, d] with H a multiple of Hkv.")

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, help: "Queries (.npy, <f2 or <f4; raw 16-bit words with --bf16).")
    var q: String
    @Option(name: .long, help: "Keys (.npy).")
    var k: String
    @Option(name: .long, help: "Values (.npy).")
    var v: String
    @Option(name: .long, help: "Output file (.npy).")
    var out: String

    @Option(name: .long, help: "Attention pattern: dense.")
    var pattern: String = "dense"
    @Flag(name: .long, help: "Attend to every key (default: causal).")
    var nonCausal = false
    @Option(name: .long, help: "Softmax scale (default 1/sqrt(d)).")
    var scale: Float?
    @Option(name: .long, help: "Output dtype: f16, bf16 or f32 (default: the input dtype).")
    var outDtype: String?
    @Flag(name: .long, help: "Read 16-bit integer/void .npy words as bfloat16 (and write bf16 outputs as <u2).")
    var bf16 = false
    @Flag(name: .long, inversion: .prefixedNo, help: "Check inputs for NaN/Inf before running.")
    var checkFinite = true

    func run() throws {
        try reportingErrors {
            let outputDType = try outDtype.map { name -> DType in
                guard let t = DType(name: name) else { throw ValidationError("unknown --out-dtype '\(name)'; use f16, bf16 or f32") }
                return t
            }
            guard pattern == "dense" else {
                throw ValidationError("unknown --pattern '\(pattern)'; use dense")
            }
            let qt = try NPYFile.read(q, bf16: bf16)
            let kt = try NPYFile.read(k, bf16: bf16)
            let vt = try NPYFile.read(v, bf16: bf16)
            if checkFinite {
                for (name, t) in [("q", qt), ("k", kt), ("v", vt)] {
                    if let index = t.firstNonFinite() {
                        throw ValidationError("\(name) holds a non-finite value at index \(index) (turn this check off with --no-check-finite)")
                    }
                }
            }
            let context = try deviceOptions.openContext()
            let engine = AttentionEngine(context: context)
            let result = try engine.dense(q: qt, k: kt, v: vt, causal: !nonCausal, scale: scale, outputDType: outputDType)
            try NPYFile.write(result.output, to: out)
            let ms = result.timing.milliseconds(.kernel)
            let p = result.problem
            print("device: \(context.device.info.name) (\(context.device.info.platformName), driver \(context.device.info.driverVersion))")
            print("shape: q \(qt.shape) k \(kt.shape) v \(vt.shape) \(p.inputDType)->\(p.outputDType) \(p.causal ? "causal" : "non-causal") scale \(p.scale)")
            print("pattern: dense, kernel \(Format.fixed(ms, 3)) ms, \(Format.fixed(p.denseFLOPs / (ms * 1e6), 1)) GFLOP/s")
            print("wrote \(out)")
        }
    }
}
