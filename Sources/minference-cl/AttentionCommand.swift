import ArgumentParser
import FoundationEssentials
import MInferenceCL

struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention of q/k/v .npy files with a dense or sparse pattern, written to an .npy file.",
        discussion: """
        q is [H, N, d] or [B, H, N, d]; k and v are [Hkv, N, d] or [B, Hkv, N, d] with H a multiple of Hkv.
        Sparse patterns are causal: a prefill (Nq = Nk) or a chunk of one (Nq < Nk, the queries at the end of the \
        keys). Budgets must be whole numbers from 1 to 2^31 - 1; budgets larger than N are allowed and clamped as \
        upstream does (A-shape: min(sink, N), min(window, N); vertical-slash: V = min(N, max(v, 30)), \
        S = min(N, max(s, 50)); block-sparse: min(blocks, N/64 + 1)). XAttention and FlexPrefill parameters \
        outside their domain (thresholds in (0, 1], block sizes, strides) are refused.
        Inputs are checked for NaN and infinity first (--no-check-finite skips the check; a row that then reads a NaN
        or an infinity is NaN, and no other row changes). Every error is one line
        on stderr and exit code 1 (64 for a malformed command line); no output file is left behind by a failed run.
        """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, help: "Queries (.npy, <f2 or <f4; raw 16-bit words with --bf16).")
    var q: String
    @Option(name: .long, help: "Keys (.npy).")
    var k: String
    @Option(name: .long, help: "Values (.npy).")
    var v: String
    @Option(name: .long, help: "Output file (.npy).")
    var out: String

    @OptionGroup var patternOptions: PatternOptions
    @Option(name: .long, help: "MInference per-model JSON config with a pattern per layer and head.")
    var config: String?
    @Option(name: .long, parsing: .unconditional, help: "Layer of --config to use.")
    var layer: Int?
    @Option(name: .long, help: "Write the indices each head used as .npy files into this folder.")
    var indicesOut: String?
    @Option(name: .long, help: "Dense fallback below the device's measured threshold: auto or never (default: never with --pattern, auto with --config).")
    var denseFallback: String?
    @Option(name: .long, help: "Vertical-slash/block-sparse estimation products: clblast or fused (default: the device profile's choice).")
    var estimation: String?

    @Flag(name: .long, help: "Attend to every key (default: causal; dense only).")
    var nonCausal = false
    @Option(name: .long, parsing: .unconditional, help: "Softmax scale (default 1/sqrt(d)).")
    var scale: Float?
    @Option(name: .long, help: "Output dtype: f16, bf16 or f32 (default: the input dtype).")
    var outDtype: String?
    @Flag(name: .long, help: "Read 16-bit integer/void .npy words as bfloat16 (and write bf16 outputs as <u2).")
    var bf16 = false
    @Flag(name: .long, inversion: .prefixedNo, help: "Check inputs for NaN/Inf before running (without it, rows that read one are NaN).")
    var checkFinite = true

    func run() throws {
        try reportingErrors {
            let outputDType = try outDtype.map { name -> DType in
                guard let t = DType(name: name) else { throw ValidationError("unknown --out-dtype '\(name)'; use f16, bf16 or f32") }
                return t
            }
            // Refuse an output that cannot be written before any work is done.
            try OutputFiles.checkWritable(out)
            let qt = try NPYFile.read(q, bf16: bf16)
            let kt = try NPYFile.read(k, bf16: bf16)
            let vt = try NPYFile.read(v, bf16: bf16)
            guard qt.dtype == kt.dtype, kt.dtype == vt.dtype else {
                throw ValidationError("q, k and v must share one dtype; got q \(qt.dtype), k \(kt.dtype), v \(vt.dtype)")
            }
            let problem = try AttentionProblem(q: qt.shape, k: kt.shape, v: vt.shape, dtype: qt.dtype, outputDType: outputDType,
                                               causal: !nonCausal, scale: scale)
            let plan = try patternOptions.plan(heads: problem.headsQ, config: config, layer: layer, layerFlag: "--layer",
                                               missingLayer: "--config needs --layer L")
            try plan.validate(for: problem)
            if checkFinite {
                do { try AttentionEngine.checkFinite(q: qt, k: kt, v: vt) } catch {
                    throw ValidationError("\(error) (turn this check off with --no-check-finite)")
                }
            }
            // Inputs checked above need no device scan for NaN and infinities.
            var options = SparseOptions(collectIndices: indicesOut != nil, assumeFinite: checkFinite)
            options.denseFallback = try fallback()
            if let estimation {
                guard let backend = DeviceProfile.EstimationBackend(rawValue: estimation) else {
                    throw ValidationError("unknown --estimation '\(estimation)'; use clblast or fused")
                }
                options.estimation = backend
            }
            if let indicesOut { try prepareDirectory(indicesOut) }

            let context = try deviceOptions.openContext()
            let engine = AttentionEngine(context: context)
            // Refuse a request the device cannot hold before allocating any of it.
            try engine.checkDeviceMemory(problem: problem, plan: plan, options: options)
            let dq = try DeviceTensor(context: context, copying: qt, label: "q")
            let dk = try DeviceTensor(context: context, copying: kt, label: "k")
            let dv = try DeviceTensor(context: context, copying: vt, label: "v")
            let output = try DeviceTensor(context: context, shape: qt.shape, dtype: problem.outputDType, label: "output")
            let report = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: output, plan: plan, options: options)
            let result = try output.download()
            // Each file is written atomically; if one write fails, the files this run wrote are removed.
            let indexFiles = try indicesOut.map { try IndexFiles.write(report, to: $0) } ?? []
            do { try NPYFile.write(result, to: out) } catch {
                OutputFiles.remove(indexFiles)
                throw error
            }
            print(AttentionReport(device: context.device, report: report).render())
            print("wrote \(out)" + (indicesOut.map { " and indices to \($0)" } ?? ""))
            if let warning = Self.overflowWarning(result, inputsChecked: checkFinite) { Terminal.warning(warning) }
        }
    }

    /// A 16-bit output saturates: f16 holds magnitudes up to 65504, and larger results are written
    /// as ±inf. Says how many, when any (with unchecked inputs they may also come from the inputs).
    static func overflowWarning(_ output: Tensor, inputsChecked: Bool) -> String? {
        guard output.dtype != .f32 else { return nil }
        let count = output.infinityCount()
        guard count > 0 else { return nil }
        let limit = output.dtype == .f16 ? "65504, the largest f16" : "the largest bf16 (about 3.4e38)"
        let cause = inputsChecked ? "results above \(limit)" : "results above \(limit), or infinities in the unchecked inputs"
        return "\(count) output value(s) are infinite: \(cause); --out-dtype f32 keeps them finite"
    }

    private func fallback() throws -> SparseOptions.DenseFallback {
        guard let denseFallback else { return config == nil ? .never : .automatic }
        return try PatternOptions.denseFallback(denseFallback)
    }

    private func prepareDirectory(_ path: String) throws {
        // Succeeds for an existing folder, fails for a file or an unwritable parent.
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ValidationError("cannot use --indices-out \(path): it is not a folder that can be created or written")
        }
    }
}
