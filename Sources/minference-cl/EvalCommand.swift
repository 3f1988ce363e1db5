import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel
import RealModule

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
    @Option(name: .long, help: "Element type of q and the KV cache that attention reads: f32, f16 (the tensor-core paths' input), or auto (f16 with tensor-core products, else f32).")
    var attentionDtype = "auto"
    @Option(name: .long, help: "Where the products run: auto (tensor cores where the device has them, else CLBlast), clblast (fp32) or tensor-cores (fp16 inputs, fp32 accumulation; NVIDIA).")
    var products = "auto"
    @Option(name: .long, help: "Seed of the passkeys.")
    var seed: UInt64 = 1
    @Option(name: .long, help: "never (default: every head runs its pattern, so the measures show the config) or auto (sparse heads run densely below the device's measured length, as deployed).")
    var denseFallback = "never"

    struct Measures {
        var agreeing = 0, positions = 0
        var kl = 0.0, nllDense = 0.0, nllSparse = 0.0, predicted = 0
    }

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
            let productPath = try GenerateCommand.productPath(products, context: context)
            let attentionType = try GenerateCommand.attentionType(attentionDtype, products: productPath)
            let dense = try DeviceModel(model: reference, engine: engine, capacity: capacity, attentionDType: attentionType, products: productPath)
            let sparse = try DeviceModel(model: reference, engine: engine, capacity: capacity, attentionDType: attentionType, products: productPath)
            let fallback = try PatternOptions.denseFallback(denseFallback)
            let options = SparseOptions(denseFallback: fallback)
            print("device: \(context.device); model \(layers) layers; sparse: \(config ?? plans[0].description)")
            print("products: \(productPath.rawValue) (\(productPath.inputDType) inputs); attention reads \(attentionType)")
            let trained = reference.config.contextLength
            if trained > 0, lengths.max()! > trained {
                print("note: lengths above \(trained) tokens are beyond the model's trained context; its predictions there are out of range")
            }
            var rows: [[String]] = []
            for n in lengths {
                let tokens = (0..<n).map { corpus[$0 % corpus.count] }
                dense.reset()
                sparse.reset()
                // Time to first token: the whole prompt prefilled in chunks, the last position's logits
                // read, after one untimed warm-up prefill (the first compiles the kernels).
                var ttft: [(seconds: Double, attention: Double)] = []
                for (model, isDense) in [(dense, true), (sparse, false)] {
                    Terminal.progress("N=\(n): time to first token, \(isDense ? "dense" : "sparse")")
                    var seconds = 0.0
                    for _ in 0..<2 {
                        model.reset()
                        seconds = try timed { try model.prefill(tokens: tokens, chunk: chunk, options: options) { isDense ? nil : plans[$0] } }.1
                    }
                    ttft.append((seconds, model.attentionMilliseconds ?? 0))
                    model.reset()
                }
                let (denseSeconds, denseAttention) = ttft[0], (sparseSeconds, sparseAttention) = ttft[1]
                var measures = Measures()
                var start = 0
                while start < n {
                    let piece = Array(tokens[start..<min(n, start + chunk)])
                    Terminal.progress("N=\(n): tokens \(start)..<\(start + piece.count)")
                    // The measured positions are the prompt's last `measured`: a suffix of each chunk they reach.
                    let measured = measureLast > 0 ? min(measureLast, n) : n
                    let rows = max(0, start + piece.count - max(start, n - measured))
                    let d = try dense.prefill(tokens: piece, lastLogits: rows)
                    let s = try sparse.prefill(tokens: piece, lastLogits: rows, options: options) { plans[$0] }
                    let first = start + piece.count - rows
                    for (i, (dr, sr)) in zip(d, s).enumerated() {
                        Self.measure(dense: dr, sparse: sr, next: first + i + 1 < n ? tokens[first + i + 1] : nil, into: &measures)
                    }
                    start += piece.count
                }
                let passkey = try passkeys(length: n, tokenizer: tokenizer, dense: dense, sparse: sparse, plans: plans, options: options)
                let p = Double(max(measures.predicted, 1))
                rows.append([
                    "\(n)", Format.fixed(denseSeconds * 1e3, 0), Format.fixed(sparseSeconds * 1e3, 0),
                    Format.fixed(denseSeconds / max(sparseSeconds, 1e-9), 2) + "x",
                    Format.fixed(denseAttention, 0) + " / " + Format.fixed(sparseAttention, 0),
                    Format.fixed(100 * Double(measures.agreeing) / Double(max(measures.positions, 1)), 1) + "%",
                    Format.scientific(measures.kl / Double(max(measures.positions, 1))),
                    Format.fixed(Double.exp(measures.nllDense / p), 2), Format.fixed(Double.exp(measures.nllSparse / p), 2),
                    passkey,
                ] + (reference.config.contextLength > 0 && n > reference.config.contextLength ? ["beyond trained"] : [""]))
            }
            Terminal.progress("done", done: true)
            print(Table(header: ["N", "TTFT dense ms", "TTFT sparse ms", "speedup", "attention ms (dense / sparse)", "top-1 agreement",
                                 "KL(dense||sparse)", "ppl dense", "ppl sparse", "passkey (dense / sparse)", ""], rows: rows).render())
        }
    }

    func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let clock = ContinuousClock(), start = clock.now
        let value = try body()
        let elapsed = clock.now - start
        return (value, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// Adds one position: top-1 agreement, KL(dense || sparse) of the softmaxes, and the
    /// negative log-likelihood of the next token under both.
    static func measure(dense: [Float], sparse: [Float], next: Int32?, into m: inout Measures) {
        func logSoftmax(_ row: [Float]) -> [Double] {
            let top = Double(row.max()!)
            let logSum = Double.log(row.reduce(0.0) { $0 + Double.exp(Double($1) - top) }) + top
            return row.map { Double($0) - logSum }
        }
        let ld = logSoftmax(dense), ls = logSoftmax(sparse)
        if ld.indices.max(by: { ld[$0] < ld[$1] }) == ls.indices.max(by: { ls[$0] < ls[$1] }) { m.agreeing += 1 }
        m.positions += 1
        m.kl += zip(ld, ls).reduce(0.0) { $0 + Double.exp($1.0) * ($1.0 - $1.1) }
        if let next {
            m.nllDense -= ld[Int(next)]
            m.nllSparse -= ls[Int(next)]
            m.predicted += 1
        }
    }

    /// Passkey retrieval at `passkeyDepths` depths: "dense hits / sparse hits of trials".
    func passkeys(length n: Int, tokenizer: Tokenizer, dense: DeviceModel, sparse: DeviceModel, plans: [LayerPlan],
                  options: SparseOptions) throws -> String {
        guard passkeyDepths > 0 else { return "-" }
        let filler = tokenizer.encode(" The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.")
        var random = SeededRandom(seed: seed &+ UInt64(n))
        var hits = (dense: 0, sparse: 0)
        for trial in 0..<passkeyDepths {
            let key = 10_000 + Int(random.next() % 90_000)
            let depth = 0.1 + 0.8 * Double(trial) / Double(max(passkeyDepths - 1, 1))
            let intro = tokenizer.encode("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.")
            let needle = tokenizer.encode(" The pass key is \(key). Remember it. \(key) is the pass key.")
            let question = tokenizer.encode(" What is the pass key? The pass key is")
            let fillerCount = max(0, n - intro.count - needle.count - question.count - 8)
            let before = Int(Double(fillerCount) * depth)
            let haystack = (0..<fillerCount).map { filler[$0 % filler.count] }
            let prompt = intro + haystack[..<before] + needle + haystack[before...] + question
            for (model, isDense) in [(dense, true), (sparse, false)] {
                model.reset()
                var last = try model.prefill(tokens: Array(prompt), chunk: chunk, options: options) { isDense ? nil : plans[$0] }[0]
                var answer: [Int32] = []
                for _ in 0..<8 {
                    let next = Int32(last.indices.max { last[$0] < last[$1] }!)
                    answer.append(next)
                    last = try model.prefill(tokens: [next], options: options) { isDense ? nil : plans[$0] }[0]
                }
                if try tokenizer.decode(answer).contains("\(key)") {
                    if isDense { hits.dense += 1 } else { hits.sparse += 1 }
                }
            }
        }
        return "\(hits.dense) / \(hits.sparse) of \(passkeyDepths)"
    }
}
