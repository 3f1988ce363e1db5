import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl generate`: a real model's long-prompt prefill on the device with MInference
/// attention, then greedy decoding with the KV cache.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill a prompt with a GGUF Llama model (SmolLM2) on the device, then greedy decoding.",
        discussion: """
        Prints the generated text, the time to first token split into attention (device time) and the rest, \
        and the decode speed. Attention runs the pattern of --pattern (with its budget flags) or, with --config, \
        each layer's heads from a MInference JSON config. The residual stream is fp32; the products run on \
        --products: fp32 through CLBlast, or fp16 inputs with fp32 accumulation on NVIDIA tensor cores (the default \
        where the device has them). \
        --max-new-tokens 0 prefills only. --logits-out writes the float32 logits of the last 64 prompt \
        positions, [64, vocab] (fewer for a shorter prompt).
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var precision: ModelPrecisionOptions
    @Option(name: .long, help: "The model, a GGUF file of the Llama architecture (scripts/fetch-model.sh fetches SmolLM2-135M).")
    var model: String
    @Option(name: .long, help: "A UTF-8 text file with the prompt.")
    var promptFile: String
    @OptionGroup var patternOptions: PatternOptions
    @Option(name: .long, help: "MInference JSON config: one entry per layer and head (instead of --pattern).")
    var config: String?
    @Option(name: .long, help: "Tokens to generate after the prompt (greedy); 0: prefill only.")
    var maxNewTokens = 32
    @Option(name: .long, help: "Prefill chunk length (0: the whole prompt in one call).")
    var chunk = 0
    @Option(name: .long, help: "Untimed prefills of the prompt before the timed one (the first run compiles the kernels).")
    var warmup = 1
    @Option(name: .long, help: "Write the float32 logits of the last 64 prompt positions to this .npy.")
    var logitsOut: String?
    @Option(name: .long, help: "Sparse heads run densely below the device's measured length: auto or never.")
    var denseFallback = "auto"

    func run() throws {
        try reportingErrors {
            guard maxNewTokens >= 0, chunk >= 0, warmup >= 0 else { throw ValidationError("--max-new-tokens, --chunk and --warmup must be >= 0") }
            if let logitsOut { try OutputFiles.checkWritable(logitsOut) }
            let file = try GGUFFile(path: model)
            let tokenizer = try Tokenizer(gguf: file)
            let reference = try ReferenceModel(gguf: file)
            let text = try String(contentsOfFile: promptFile, encoding: .utf8)
            let prompt = tokenizer.encode(text)
            guard !prompt.isEmpty else { throw ValidationError("the prompt in \(promptFile) has no tokens") }
            let heads = reference.config.headCount
            let plans = try patternOptions.layerPlans(layers: reference.config.layerCount, heads: heads, config: config)
            let fallback = try PatternOptions.denseFallback(denseFallback)
            let context = try deviceOptions.openContext()
            let engine = AttentionEngine(context: context)
            let (productPath, attentionType) = try precision.resolve(context: context)
            let device = try DeviceModel(model: reference, engine: engine, capacity: prompt.count + maxNewTokens,
                                         attentionDType: attentionType, products: productPath)
            let options = SparseOptions(denseFallback: fallback)
            print("device: \(context.device); prompt: \(prompt.count) tokens; attention: \(plans[0].description)\(config.map { " (config \($0))" } ?? "")")
            print("products: \(productPath.rawValue) (\(productPath.inputDType) inputs); attention reads \(device.attentionDType)")

            for _ in 0..<warmup {
                _ = try device.prefill(tokens: prompt, chunk: chunk, options: options) { plans[$0] }
                device.reset()
            }
            let clock = ContinuousClock()
            let started = clock.now
            let logits = try device.prefill(tokens: prompt, chunk: chunk, lastLogits: min(64, prompt.count), options: options) { plans[$0] }
            let prefill = clock.now - started
            let prefillMs = prefill / .milliseconds(1)
            if let logitsOut {
                let tensor = try Tensor(shape: [logits.count, reference.config.vocabSize], dtype: .f32, values: logits.flatMap { $0 })
                try NPYFile.write(tensor, to: logitsOut)
            }
            let attention = device.attentionMilliseconds
            print("time to first token: \(Format.fixed(prefillMs, 1)) ms" + (warmup > 0 ? " (after \(warmup) warm-up prefill\(warmup > 1 ? "s" : ""))" : "")
                  + (attention.map { " (attention \(Format.fixed($0, 1)) ms on the device, the rest \(Format.fixed(prefillMs - $0, 1)) ms)" } ?? ""))

            let decodeStart = clock.now
            let generated = try device.greedyDecode(after: logits[logits.count - 1], count: maxNewTokens, stop: tokenizer.eos,
                                                    options: options) { plans[$0] }
            let decode = clock.now - decodeStart
            if !generated.isEmpty {
                let seconds = decode / .seconds(1)
                print("generated \(generated.count) tokens (\(Format.fixed(Double(generated.count) / max(seconds, 1e-9), 1)) tokens/s):")
                print(try tokenizer.decode(generated))
            }
        }
    }
}
