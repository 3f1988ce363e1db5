/// The hyperparameters of a Llama-architecture model, read from GGUF metadata (`llama.*` keys,
/// as llama.cpp names them).
///
/// Required: `general.architecture` = `llama`, `llama.block_count`, `llama.embedding_length`,
/// `llama.feed_forward_length`, `llama.attention.head_count`,
/// `llama.attention.layer_norm_rms_epsilon`. Optional, with llama.cpp's defaults:
/// `llama.attention.head_count_kv` (= head count), `llama.rope.freq_base` (10000),
/// `llama.rope.dimension_count` (= head dim; another value is refused), `llama.context_length`
/// (0 when absent: unknown), `llama.vocab_size` (the rows of `token_embd.weight`).
/// `llama.rope.scaling.type` other than `none` is refused.
public struct LlamaConfig: Sendable, Equatable {
    public var layerCount: Int
    /// Model width (`embedding_length`).
    public var hiddenSize: Int
    public var feedForwardSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    /// `hiddenSize / headCount`.
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeFreqBase: Double
    public var rmsNormEpsilon: Double

    /// Query heads per KV head (query head `h` reads KV head `h / groupSize`).
    public var groupSize: Int { headCount / kvHeadCount }

    public init(layerCount: Int, hiddenSize: Int, feedForwardSize: Int, headCount: Int, kvHeadCount: Int,
                vocabSize: Int, contextLength: Int = 0, ropeFreqBase: Double = 10_000, rmsNormEpsilon: Double = 1e-5) {
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.feedForwardSize = feedForwardSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headCount > 0 ? hiddenSize / headCount : 0
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeFreqBase = ropeFreqBase
        self.rmsNormEpsilon = rmsNormEpsilon
    }

    /// - Throws: `ModelError.unsupportedArchitecture`, `ModelError.unsupportedConfig`,
    ///   `GGUFError.missingKey` / `wrongType` naming the key, `GGUFError.missingTensor` when
    ///   `llama.vocab_size` is absent and so is `token_embd.weight`.
    public init(gguf file: GGUFFile) throws {
        let architecture = try file.string("general.architecture")
        guard architecture == "llama" else {
            throw ModelError.unsupportedArchitecture(path: file.path, architecture: architecture)
        }
        let heads = try file.int("llama.attention.head_count")
        let vocab = try file.optional("llama.vocab_size", GGUFFile.int)
            ?? file.tensor(named: "token_embd.weight").rowCount
        self.init(layerCount: try file.int("llama.block_count"),
                  hiddenSize: try file.int("llama.embedding_length"),
                  feedForwardSize: try file.int("llama.feed_forward_length"),
                  headCount: heads,
                  kvHeadCount: try file.optional("llama.attention.head_count_kv", GGUFFile.int) ?? heads,
                  vocabSize: vocab,
                  contextLength: try file.optional("llama.context_length", GGUFFile.int) ?? 0,
                  ropeFreqBase: try file.optional("llama.rope.freq_base", GGUFFile.double) ?? 10_000,
                  rmsNormEpsilon: try file.double("llama.attention.layer_norm_rms_epsilon"))
        func refuse(_ reason: String) -> ModelError { .unsupportedConfig(path: file.path, reason: reason) }
        for (name, value) in [("block_count", layerCount), ("embedding_length", hiddenSize),
                              ("feed_forward_length", feedForwardSize), ("attention.head_count", headCount),
                              ("attention.head_count_kv", kvHeadCount), ("vocab_size", vocabSize)] where value <= 0 {
            throw refuse("llama.\(name) is \(value), must be positive")
        }
        guard hiddenSize % headCount == 0 else {
            throw refuse("embedding_length \(hiddenSize) is not a multiple of head_count \(headCount)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw refuse("head_count \(headCount) is not a multiple of head_count_kv \(kvHeadCount)")
        }
        guard headDim % 2 == 0 else { throw refuse("head dim \(headDim) is odd; RoPE rotates pairs") }
        if let ropeDims = try file.optional("llama.rope.dimension_count", GGUFFile.int), ropeDims != headDim {
            throw refuse("llama.rope.dimension_count \(ropeDims) differs from the head dim \(headDim) (partial RoPE is not implemented)")
        }
        if let scaling = try file.optional("llama.rope.scaling.type", GGUFFile.string), scaling != "none" {
            throw refuse("llama.rope.scaling.type '\(scaling)' (RoPE scaling is not implemented)")
        }
        guard rmsNormEpsilon > 0, ropeFreqBase > 0 else {
            throw refuse("layer_norm_rms_epsilon \(rmsNormEpsilon) and rope.freq_base \(ropeFreqBase) must be positive")
        }
    }
}
