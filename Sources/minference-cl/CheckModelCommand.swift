import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl check-model`: the device forward pass against the CPU reference forward pass on
/// a real text, the issue's accuracy proof on any device (the tests run it against a committed
/// float64 reference; this command needs neither Swift nor Python on the machine).
struct CheckModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-model",
        abstract: "A model's device prefill logits against the CPU reference forward pass, with f32 and f16 attention.",
        discussion: """
        The first --tokens tokens of --text (default: the licence texts of /usr/share/common-licenses, GPL-3 first) \
        through the CPU reference forward pass (ReferenceModel: float32 activations, float64 sums, all cores) and \
        through the device forward pass (dense attention) once per product path (--products; default: every path the \
        device has) and --attention-dtypes entry. For the last --positions \
        positions: the largest and the overall relative L2 distance of the device's logits from the reference's, and \
        the share of positions with the same top-1 token. Exits with status 1 unless every run is within \
        --max-relative-l2 at every position and agrees on at least --min-top1 of the positions (defaults: 1e-2 and \
        0.98, the issue's proof).
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @Option(name: .long, help: "The model, a GGUF Llama file (default: where scripts/fetch-model.sh puts SmolLM2-135M-Instruct).")
    var model: String?
    @Option(name: .long, help: "A UTF-8 text (default: the licence texts, GPL-3 first).")
    var text: String?
    @Option(name: .long, parsing: .unconditional, help: "Tokens of the text prefilled.")
    var tokens = 1500
    @Option(name: .long, parsing: .unconditional, help: "Last positions compared.")
    var positions = 64
    @Option(name: .long, help: "Attention dtypes of the device pass, comma-separated (f32, f16).")
    var attentionDtypes = "f32,f16"
    @Option(name: .long, help: "Product paths of the device pass: all (every path the device has), auto, clblast or tensor-cores.")
    var products = "all"
    @Option(name: .long, parsing: .unconditional, help: "Prefill chunk length of the device pass (0: one call).")
    var chunk = 0
    @Option(name: .long, parsing: .unconditional, help: "Largest relative L2 distance allowed at any position.")
    var maxRelativeL2 = LogitsRequirement.deviceAgainstReference.maxRelativeL2
    @Option(name: .long, parsing: .unconditional, help: "Smallest share of positions with the same top-1 token.")
    var minTop1 = LogitsRequirement.deviceAgainstReference.minTop1Agreement

    func run() throws {
        try reportingErrors {
            guard tokens >= 1, positions >= 1, positions <= tokens else {
                throw ValidationError("need 1 <= --positions <= --tokens, got --positions \(positions) --tokens \(tokens)")
            }
            guard chunk >= 0 else { throw ValidationError("--chunk must be >= 0, got \(chunk)") }
            let dtypes = try attentionDtypes.split(separator: ",").map { name -> DType in
                guard let dtype = DType(name: String(name)), dtype == .f32 || dtype == .f16 else {
                    throw ValidationError("unknown --attention-dtypes entry '\(name)'; use f32 or f16")
                }
                return dtype
            }
            guard !dtypes.isEmpty else { throw ValidationError("--attention-dtypes names no dtype") }
            let requirement = LogitsRequirement(maxRelativeL2: maxRelativeL2, minTop1Agreement: minTop1)
            let path = try ModelInputs.modelPath(model)
            let file = try GGUFFile(path: path)
            let tokenizer = try Tokenizer(gguf: file)
            let (all, source) = try ModelInputs.textTokens(text, wanted: tokens, tokenizer: tokenizer)
            guard all.count >= tokens else { throw ValidationError("\(source) has \(all.count) tokens, fewer than --tokens \(tokens)") }
            let prompt = Array(all.prefix(tokens))
            let context = try deviceOptions.openContext()
            let productPaths = products == "all" ? ProductPath.allCases.filter { $0.isAvailable(on: context) }
                : [try ModelPrecisionOptions.productPath(products, context: context)]
            print("device: \(context.device)")
            print("text: the first \(tokens) tokens of \(source); the last \(positions) positions compared")
            Terminal.progress("dequantising the model...")
            let reference = try ReferenceModel(gguf: file)
            Terminal.progress("CPU reference forward pass of \(tokens) tokens...")
            let clock = ContinuousClock(), start = clock.now
            let want = reference.logits(tokens: prompt, positions: (tokens - positions)..<tokens)
            let seconds = (clock.now - start) / .seconds(1)
            print("reference: CPU forward pass (float32 activations, float64 sums) in \(Format.fixed(seconds, 1)) s")
            let engine = AttentionEngine(context: context)
            var rows: [[String]] = [], failed: [String] = []
            for (productPath, dtype) in productPaths.flatMap({ p in dtypes.map { (p, $0) } }) {
                Terminal.progress("device forward pass, products \(productPath.rawValue), attention \(dtype)...")
                let device = try DeviceModel(model: reference, engine: engine, capacity: tokens, attentionDType: dtype, products: productPath)
                var comparison = LogitsComparison()
                comparison.add(reference: want, candidate: try device.prefill(tokens: prompt, chunk: chunk, lastLogits: positions))
                let met = requirement.isMet(by: comparison)
                if !met { failed.append("products \(productPath.rawValue), attention \(dtype)") }
                rows.append([productPath.rawValue, "\(dtype)", Format.scientific(comparison.maxRelativeL2), Format.scientific(comparison.relativeL2),
                             "\(comparison.agreeing)/\(comparison.positions) (" + Format.fixed(100 * comparison.top1Agreement, 1) + "%)",
                             met ? "ok" : "FAIL"])
            }
            Terminal.progress("done", done: true)
            print(Table(header: ["products", "attention", "relative L2 (largest position)", "relative L2 (all)", "top-1 agreement", "check"], rows: rows).render())
            print("requirement: \(requirement)")
            if !failed.isEmpty {
                throw ValidationError("\(failed.joined(separator: "; ")): the device's logits do not meet the requirement")
            }
        }
    }
}
