import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl demo`: the model job (`ModelDemo`), or with `--kernels` the kernel table
/// (`KernelDemo`). Each job's options are refused by the other.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "A real model's long prompt prefilled dense and with a searched MInference config on the default device (--kernels: the kernel table).",
        discussion: """
        The model job: SmolLM2-135M-Instruct (scripts/fetch-model.sh fetches it) prefills the licence texts of \
        /usr/share/common-licenses (or --text) with a passkey hidden at half depth, densely and with the sparse config, \
        each with its own KV cache. Printed: the time to first token of both (the prompt in one call, only the last \
        position's logits), split into attention (device time) and the rest; the top-1 agreement of the next-token \
        predictions and the mean KL(dense || config) over every prompt position (a chunked pass with all logits, run \
        first); and whether each found the passkey. Length: the model's trained 8192 on a GPU, 1024 on a CPU device \
        (--length). The config's heads run their patterns at every length (--dense-fallback never).

        --kernels: dense and sparse attention on a long-context-like input at a few lengths, each sparse pattern with \
        its time, its speedup over dense in the same run and the share of the causal attention its kernel computed \
        (density). Three numbers, kept apart: "kernel vs float64 (its keys)" is the kernel's relative L2 error against \
        a float64 reference over exactly the keys its pattern covers, on sampled rows; "check" judges that number alone \
        against the dtype's tolerance. "recall" is the share of the dense softmax mass those keys hold (1 = nothing \
        lost). "vs dense (approximation)" is the pattern's distance from dense attention: what the pattern gives up, \
        not an error of the kernel, and no check judges it.
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @Flag(name: .long, help: "The kernel table on synthetic inputs instead of the model (the options below marked --kernels).")
    var kernels = false

    @Option(name: .long, help: "The model, a GGUF Llama file (default: where scripts/fetch-model.sh puts SmolLM2-135M-Instruct).")
    var model: String?
    @Option(name: .long, help: "MInference JSON config of the sparse side (default: \(ModelDemo.defaultConfig)).")
    var config: String?
    @Option(name: .long, help: "A UTF-8 text instead of the licence texts.")
    var text: String?
    @Option(name: .long, parsing: .unconditional, help: "Cache positions: the prompt and the 8-token passkey answer (default: 8192 on a GPU, 1024 on a CPU device).")
    var length: Int?
    @Option(name: .long, parsing: .unconditional, help: "Chunk length of the agreement pass (default 1024).")
    var chunk: Int?
    @Option(name: .long, help: "Element type of q and the KV cache that attention reads: f32, f16 (the tensor-core paths' input), or auto (default: f16 with tensor-core products, else f32).")
    var attentionDtype: String?
    @Option(name: .long, help: "Where the products run: auto (default: tensor cores where the device has them, else CLBlast), clblast (fp32) or tensor-cores (fp16 inputs, fp32 accumulation; NVIDIA).")
    var products: String?
    @Option(name: .long, help: "never (default: every head runs its pattern) or auto (sparse heads run densely below the device's measured length).")
    var denseFallback: String?

    @Option(name: .long, parsing: .upToNextOption, help: "--kernels: sequence lengths (default: 2048 4096 on a CPU device, 8192 32768 131072 on a GPU).")
    var lengths: [Int] = []
    @Option(name: .long, parsing: .unconditional, help: "--kernels: query heads (default 8).")
    var heads: Int?
    @Option(name: .long, parsing: .unconditional, help: "--kernels: KV heads (default 2).")
    var kvHeads: Int?
    @Option(name: .long, parsing: .unconditional, help: "--kernels: head dim (default 128).")
    var headDim: Int?
    @Option(name: .long, help: "--kernels: input dtype, f16, bf16 or f32 (default f16).")
    var dtype: String?
    @Option(name: .long, parsing: .unconditional, help: "--kernels: query rows checked against the float64 reference per length (default 48).")
    var checkRows: Int?
    @Option(name: .long, parsing: .unconditional, help: "Random seed (of the passkey; with --kernels, of the inputs).")
    var seed: UInt64 = 1

    func validate() throws {
        let kernelOptions: [(String, Bool)] = [("--lengths", !lengths.isEmpty), ("--heads", heads != nil), ("--kv-heads", kvHeads != nil),
                                               ("--head-dim", headDim != nil), ("--dtype", dtype != nil), ("--check-rows", checkRows != nil)]
        let modelOptions: [(String, Bool)] = [("--model", model != nil), ("--config", config != nil),
                                              ("--text", text != nil), ("--length", length != nil), ("--chunk", chunk != nil),
                                              ("--attention-dtype", attentionDtype != nil), ("--products", products != nil), ("--dense-fallback", denseFallback != nil)]
        if kernels, let (flag, _) = modelOptions.first(where: \.1) { throw ValidationError("\(flag) applies to the model demo, not --kernels") }
        if !kernels, let (flag, _) = kernelOptions.first(where: \.1) { throw ValidationError("\(flag) applies to demo --kernels") }
    }

    func run() throws {
        try reportingErrors {
            if kernels { try runKernels() } else { try runModel() }
        }
    }

    func runModel() throws {
        let config = self.config ?? ModelDemo.defaultConfig, chunk = self.chunk ?? 1024
        guard chunk >= 1 else { throw ValidationError("--chunk must be >= 1, got \(chunk)") }
        if let length, length < 1 { throw ValidationError("--length must be >= 1, got \(length)") }
        let path = try ModelInputs.modelPath(model)
        guard FileManager.default.fileExists(atPath: config) else {
            throw ValidationError("no config at \(config) (the default is relative to the repository root: run the demo there, or give --config)")
        }
        let fallback = try PatternOptions.denseFallback(denseFallback ?? "never")
        let file = try GGUFFile(path: path)
        let tokenizer = try Tokenizer(gguf: file)
        Terminal.progress("dequantising the model...")
        let reference = try ReferenceModel(gguf: file)
        let patterns = try PatternConfig.load(path: config)
        let plans = try (0..<reference.config.layerCount).map {
            LayerPlan(heads: try patterns.patterns(layer: $0, heads: reference.config.headCount))
        }
        let context = try deviceOptions.openContext()
        let kind = context.device.info.kind
        let length = self.length ?? ModelDemo.defaultLength(kind: kind, trainedLength: reference.config.contextLength)
        let productPath = try ModelPrecisionOptions.productPath(products ?? "auto", context: context)
        let attentionDType = try ModelPrecisionOptions.attentionType(attentionDtype ?? "auto", products: productPath)
        let (haystack, source) = try ModelInputs.textTokens(text, wanted: length, tokenizer: tokenizer)
        let c = reference.config
        print("device: \(context.device)")
        print("model: \(path.split(separator: "/").last ?? ""), \(c.layerCount) layers, \(c.headCount) query / \(c.kvHeadCount) KV heads of \(c.headDim), trained context \(c.contextLength); products \(productPath.rawValue) (\(productPath.inputDType) inputs), attention q and KV cache \(attentionDType)")
        let demo = ModelDemo(context: context, model: reference, tokenizer: tokenizer, plans: plans, options: SparseOptions(denseFallback: fallback),
                             attentionDType: attentionDType, products: productPath, length: length, chunk: chunk, seed: seed)
        let (passkey, prompt) = demo.prompt(haystack: haystack)
        print("text: \(source)\(haystack.count < length ? ", repeated" : ""); \(prompt.count) prompt tokens with a passkey hidden at \(Int(ModelDemo.passkeyDepth * 100))% depth, asked for at the end")
        if c.contextLength > 0, length > c.contextLength {
            print("note: \(length) tokens are beyond the model's trained context of \(c.contextLength); its predictions there are out of range")
        }
        print("config: \(config) (dense fallback \(fallback.rawValue)): " + ModelDemo.patternCounts(plans))
        let outcome = try demo.run(prompt: prompt, passkey: passkey) { Terminal.progress($0 + "...") }
        Terminal.progress("done", done: true)
        print(try demo.report(outcome))
    }

    func runKernels() throws {
        let dtypeName = self.dtype ?? "f16", checkRows = self.checkRows ?? 48
        guard let dtype = DType(name: dtypeName) else { throw ValidationError("unknown --dtype '\(dtypeName)'") }
        guard checkRows >= 1 else { throw ValidationError("--check-rows must be at least 1, got \(checkRows)") }
        let heads = self.heads ?? 8, kvHeads = self.kvHeads ?? 2, headDim = self.headDim ?? 128
        let context = try deviceOptions.openContext()
        let info = context.device.info
        let lengths = self.lengths.isEmpty ? (info.kind == .gpu ? [8192, 32768, 131072] : [2048, 4096]) : self.lengths
        let patterns = KernelDemo.patterns(for: info.kind)
        print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion))")
        print("input: long-context-like synthetic q/k/v (sink and strong key columns, local and periodic diagonals), Hq=\(heads) Hkv=\(kvHeads) d=\(headDim) \(dtype) causal")
        print("patterns: \(patterns.map(\.description).joined(separator: ", "))")
        let demo = KernelDemo(context: context, headsQ: heads, headsKV: kvHeads, headDim: headDim, dtype: dtype,
                              checkRows: checkRows, seed: seed, patterns: patterns)
        var rows: [[String]] = []
        for n in lengths {
            Terminal.progress("running N=\(n)...")
            rows += try demo.run(length: n) { Terminal.progress("N=\(n): \($0)") }
        }
        Terminal.progress("done", done: true)
        print(Table(header: KernelDemo.header, rows: rows).render())
    }
}
