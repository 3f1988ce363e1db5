import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl eval`: a model's prefill dense and with a sparse config, side by side: time to
/// first token, agreement of the next-token predictions, KL divergence, perplexity, and passkey
/// retrieval.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Dense vs a sparse config on a real model: time to first token, top-1 agreement, KL, perplexity, passkey.",
        discussion: """
        Per length, the first N tokens of --text (repeated when shorter) are prefilled in chunks twice, densely and with \
        the config (or --pattern), each with its own KV cache. Time to first token: that prefill up to the last \
        position's logits, after one untimed warm-up (the first run compiles the kernels); the attention share is the \
        device time of the attention calls. Over every prompt position: top-1 agreement of the \
        next-token predictions, mean KL(dense || sparse) in nats, perplexity of the text under both. Then passkey \
        retrieval: a random 5-digit key hidden at depths 10 % ... 90 % of a filler text of N tokens, asked for at the \
        end, answered greedily by both (success: the key's digits in the first 8 generated tokens).
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var precision: ModelPrecisionOptions
    @Option(name: .long, help: "The model, a GGUF file of the Llama architecture.")
    var model: String
    @Option(name: .long, help: "A UTF-8 text file for the agreement and perplexity measures.")
    var text: String
    @OptionGroup var patternOptions: PatternOptions
    @Option(name: .long, help: "MInference JSON config: one entry per layer and head (instead of --pattern).")
    var config: String?
    @Option(name: .long, help: "Prompt lengths in tokens, comma-separated.")
    var lengths = "2048,4096,8192"
    @Option(name: .long, help: "Prefill chunk length.")
    var chunk = 1024
    @Option(name: .long, help: "Agreement, KL and perplexity over the last this many positions of each length (0: every position).")
    var measureLast = 0
    @Option(name: .long, help: "Passkey depths per length (evenly from 10 % to 90 %; 0: no passkey test).")
    var passkeyDepths = 5
    @Option(name: .long, help: "Seed of the passkeys.")
    var seed: UInt64 = 1
    @Option(name: .long, help: "never (default: every head runs its pattern, so the measures show the config) or auto (sparse heads run densely below the device's measured length, as deployed).")
    var denseFallback = "never"

    func run() throws {
        try reportingErrors {
            let lengths = try self.lengths.split(separator: ",").map { part -> Int in
                guard let n = Int(part.filter { !$0.isWhitespace }), n >= 2 else { throw ValidationError("bad --lengths entry '\(part)'") }
                return n
            }
            guard chunk >= 1, measureLast >= 0 else { throw ValidationError("--chunk must be >= 1 and --measure-last >= 0") }
            let file = try GGUFFile(path: model)
            let tokenizer = try Tokenizer(gguf: file)
            let reference = try ReferenceModel(gguf: file)
            let corpus = tokenizer.encode(try String(contentsOfFile: text, encoding: .utf8))
            guard !corpus.isEmpty else { throw ValidationError("\(text) has no tokens") }
            let layers = reference.config.layerCount, heads = reference.config.headCount
            let plans = try patternOptions.layerPlans(layers: layers, heads: heads, config: config,
                                                      missingPattern: "give --config or --pattern")
            let context = try deviceOptions.openContext()
            let engine = AttentionEngine(context: context)
            let capacity = lengths.max()! + 16
            let (productPath, attentionType) = try precision.resolve(context: context)
            let fallback = try PatternOptions.denseFallback(denseFallback)
            let comparison = try PrefillComparison(model: reference, engine: engine, capacity: capacity, attentionDType: attentionType,
                                                   products: productPath, plans: plans, options: SparseOptions(denseFallback: fallback))
            print("device: \(context.device); model \(layers) layers; sparse: \(config ?? plans[0].description)")
            print("products: \(productPath.rawValue) (\(productPath.inputDType) inputs); attention reads \(attentionType)")
            let trained = reference.config.contextLength
            if trained > 0, lengths.max()! > trained {
                print("note: lengths above \(trained) tokens are beyond the model's trained context; its predictions there are out of range")
            }
            var rows: [[String]] = []
            for n in lengths {
                let tokens = (0..<n).map { corpus[$0 % corpus.count] }
                // Time to first token: the whole prompt prefilled in chunks, the last position's logits
                // read, after one untimed warm-up prefill (the first compiles the kernels).
                Terminal.progress("N=\(n): time to first token, dense then sparse")
                let first = try comparison.firstToken(tokens: tokens, chunk: chunk, warmups: 1)
                let logits = try comparison.compare(tokens: tokens, chunk: chunk, lastPositions: measureLast > 0 ? measureLast : nil) { done in
                    Terminal.progress("N=\(n): tokens \(done)..<\(min(n, done + chunk))")
                }
                let passkey = try passkeys(length: n, tokenizer: tokenizer, comparison: comparison)
                let (dense, sparse) = (first.dense, first.sparse)
                rows.append([
                    "\(n)", Format.fixed(dense.milliseconds, 0), Format.fixed(sparse.milliseconds, 0),
                    Format.fixed(dense.milliseconds / max(sparse.milliseconds, 1e-6), 2) + "x",
                    Format.fixed(dense.attentionMilliseconds ?? 0, 0) + " / " + Format.fixed(sparse.attentionMilliseconds ?? 0, 0),
                    Format.fixed(100 * logits.top1Agreement, 1) + "%", Format.scientific(logits.meanKL),
                    Format.fixed(logits.perplexity.reference, 2), Format.fixed(logits.perplexity.candidate, 2),
                    passkey,
                ] + (reference.config.contextLength > 0 && n > reference.config.contextLength ? ["beyond trained"] : [""]))
            }
            Terminal.progress("done", done: true)
            print(Table(header: ["N", "TTFT dense ms", "TTFT sparse ms", "speedup", "attention ms (dense / sparse)", "top-1 agreement",
                                 "KL(dense||sparse)", "ppl dense", "ppl sparse", "passkey (dense / sparse)", ""], rows: rows).render())
        }
    }

    /// Passkey retrieval at `passkeyDepths` depths of a filler text: "dense hits / sparse hits of trials".
    func passkeys(length n: Int, tokenizer: Tokenizer, comparison: PrefillComparison) throws -> String {
        guard passkeyDepths > 0 else { return "-" }
        let filler = tokenizer.encode(" The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.")
        var random = SeededRandom(seed: seed &+ UInt64(n))
        var hits = (dense: 0, sparse: 0)
        for trial in 0..<passkeyDepths {
            Terminal.progress("N=\(n): passkey \(trial + 1) of \(passkeyDepths)")
            let passkey = Passkey(random: &random)
            let depth = 0.1 + 0.8 * Double(trial) / Double(max(passkeyDepths - 1, 1))
            let prompt = passkey.prompt(haystack: filler, length: n, depth: depth, tokenizer: tokenizer)
            let found = try comparison.retrieve(passkey, prompt: prompt, tokenizer: tokenizer, chunk: chunk)
            if found.dense { hits.dense += 1 }
            if found.sparse { hits.sparse += 1 }
        }
        return "\(hits.dense) / \(hits.sparse) of \(passkeyDepths)"
    }
}
