import MInferenceCL

/// One model prefilled twice on one device, densely and with MInference's sparse attention (a
/// plan per layer), each in its own `DeviceModel` with its own KV cache: what `minference-cl eval`
/// and `demo` measure.
///
/// - `firstToken(tokens:)`: the time to first token of each side, the prompt prefilled with only
///   the last position's logits (as a serving engine computes them), after warm-up prefills.
/// - `compare(tokens:)`: the prompt in chunks, the logits of every position (or of the last
///   ones) of both sides compared (`LogitsComparison`, dense as the reference; the next token of
///   the prompt gives the perplexities).
/// - `retrieve(_:prompt:tokenizer:)` and `answers(after:)`: passkey retrieval, greedy answers.
public final class PrefillComparison: @unchecked Sendable {
    public let dense: DeviceModel, sparse: DeviceModel
    /// `plans[layer]`: the sparse side's attention for each layer.
    public let plans: [LayerPlan]
    public let options: SparseOptions

    /// One side's timed prefill: wall time from the first command enqueued to the logits on the
    /// host, in milliseconds, and the attention calls' device time within it (nil on a queue
    /// without profiling).
    public struct Timing: Sendable, Equatable {
        public var milliseconds: Double
        public var attentionMilliseconds: Double?
        /// The rest of the prefill: products, norms, RoPE, the host (milliseconds − attention).
        public var otherMilliseconds: Double? { attentionMilliseconds.map { milliseconds - $0 } }
    }

    /// The time to first token of both sides and their last position's logits (`[vocab]`).
    public struct FirstToken: Sendable {
        public var dense: Timing, sparse: Timing
        public var denseLogits: [Float], sparseLogits: [Float]
    }

    /// Uploads `model` twice (two KV caches of `capacity` tokens in `attentionDType`, the products
    /// on `products`, default the device's preferred path).
    /// - Parameter plans: one plan per layer (`model.config.layerCount`), for the sparse side.
    /// - Throws: `AttentionError.invalidArgument` when `plans` does not have one plan per layer, and
    ///   the errors of `DeviceModel.init`.
    public init(model: ReferenceModel, engine: AttentionEngine, capacity: Int, attentionDType: DType = .f32,
                products: ProductPath? = nil, plans: [LayerPlan], options: SparseOptions = SparseOptions()) throws {
        guard plans.count == model.config.layerCount else {
            throw AttentionError.invalidArgument("\(plans.count) layer plans for a model of \(model.config.layerCount) layers")
        }
        dense = try DeviceModel(model: model, engine: engine, capacity: capacity, attentionDType: attentionDType, products: products)
        sparse = try DeviceModel(model: model, engine: engine, capacity: capacity, attentionDType: attentionDType, products: products)
        self.plans = plans
        self.options = options
    }

    /// The sparse side's plan of `layer` (the closure `DeviceModel.prefill` takes).
    public func plan(_ layer: Int) -> LayerPlan? { plans[layer] }

    /// Prefills `tokens` on both sides from an empty cache, `chunk` tokens per call (each chunk
    /// dense first, then sparse), and compares the logits of the last `lastPositions` positions
    /// (nil: every position); `progress(done)` is called before each chunk with the tokens done.
    /// - Throws: `AttentionError.invalidArgument` for `chunk` < 1; the errors of `DeviceModel.prefill`.
    public func compare(tokens: [Int32], chunk: Int, lastPositions: Int? = nil, progress: (Int) -> Void = { _ in }) throws
        -> LogitsComparison {
        guard chunk >= 1 else { throw AttentionError.invalidArgument("chunk must be >= 1, got \(chunk)") }
        dense.reset()
        sparse.reset()
        let n = tokens.count, firstMeasured = n - min(max(lastPositions ?? n, 0), n)
        var comparison = LogitsComparison()
        var start = 0
        while start < n {
            progress(start)
            let piece = Array(tokens[start..<min(n, start + chunk)])
            // The measured positions are a suffix of the prompt: a suffix of each chunk they reach.
            let rows = max(0, start + piece.count - max(start, firstMeasured))
            let d = try dense.prefill(tokens: piece, lastLogits: rows)
            let s = try sparse.prefill(tokens: piece, lastLogits: rows, options: options, plan: plan)
            let first = start + piece.count - rows
            comparison.add(reference: d, candidate: s, next: (0..<rows).map { first + $0 + 1 < n ? tokens[first + $0 + 1] : nil })
            start += piece.count
        }
        return comparison
    }

    /// Prefills `tokens` on each side (dense first) from an empty cache with only the last
    /// position's logits, `chunk` tokens per call (0: one call): `warmups` untimed prefills (the
    /// first compiles the kernels), then the timed one. The caches then hold the prompt, ready
    /// for decoding.
    /// - Throws: the errors of `DeviceModel.prefill`.
    public func firstToken(tokens: [Int32], chunk: Int = 0, warmups: Int = 1) throws -> FirstToken {
        func timedPrefill(_ model: DeviceModel, _ plan: (Int) -> LayerPlan?) throws -> (Timing, [Float]) {
            for _ in 0..<max(warmups, 0) {
                model.reset()
                _ = try model.prefill(tokens: tokens, chunk: chunk, options: options, plan: plan)
            }
            model.reset()
            let (logits, ms) = try Self.timed { try model.prefill(tokens: tokens, chunk: chunk, options: options, plan: plan) }
            return (Timing(milliseconds: ms, attentionMilliseconds: model.attentionMilliseconds), logits.last ?? [])
        }
        let (denseTiming, denseLogits) = try timedPrefill(dense) { _ in nil }
        let (sparseTiming, sparseLogits) = try timedPrefill(sparse, plan)
        return FirstToken(dense: denseTiming, sparse: sparseTiming, denseLogits: denseLogits, sparseLogits: sparseLogits)
    }

    /// Passkey retrieval on both sides: each prefills `prompt` (made by `passkey`, `chunk` tokens
    /// per call, 0: one call) and answers greedily; whether each answer holds the key.
    /// - Throws: the errors of `DeviceModel.prefill` and `Passkey.isFound`.
    public func retrieve(_ passkey: Passkey, prompt: [Int32], tokenizer: Tokenizer, chunk: Int = 0) throws -> (dense: Bool, sparse: Bool) {
        let answers = try answers(after: try firstToken(tokens: prompt, chunk: chunk, warmups: 0))
        return (try passkey.isFound(in: answers.dense, tokenizer: tokenizer), try passkey.isFound(in: answers.sparse, tokenizer: tokenizer))
    }

    /// Both sides' greedy answers (`Passkey.answerTokens` each) after `first`'s prefill.
    public func answers(after first: FirstToken) throws -> (dense: [Int32], sparse: [Int32]) {
        (try dense.greedyDecode(after: first.denseLogits, count: Passkey.answerTokens),
         try sparse.greedyDecode(after: first.sparseLogits, count: Passkey.answerTokens, options: options, plan: plan))
    }

    /// `body`'s result and its wall time in milliseconds.
    static func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let clock = ContinuousClock(), start = clock.now
        let value = try body()
        let elapsed = clock.now - start
        return (value, elapsed / .milliseconds(1))
    }
}
