/// A plain CPU forward pass of a Llama-architecture GGUF model, as llama.cpp's `llama` graph
/// runs it: the reference that GPU paths and captured attention inputs are checked against.
///
/// Every weight is dequantised to Float once, at `init` (SmolLM2-135M: 135M floats, 540 MB).
/// Per layer, with `x` the residual stream (tokens × hidden, row-major):
///
///     n1 = rmsnorm(x) * attn_norm
///     q = rope(Wq n1), k = rope(Wk n1), v = Wv n1          (per head of headDim)
///     x = x + Wo attention(q, k, v)                         causal, scale 1/sqrt(headDim),
///                                                           query head h reads KV head h / groupSize
///     n2 = rmsnorm(x) * ffn_norm
///     x = x + Wdown(silu(Wgate n2) * Wup n2)
///     logits = Wout (rmsnorm(x) * output_norm)              Wout = output.weight, else token_embd
///
/// RMSNorm is `x / sqrt(mean(x²) + eps)`. RoPE rotates adjacent pairs (llama.cpp's
/// `LLAMA_ROPE_TYPE_NORM`, right for the converter's permuted q/k rows), at position `p`:
/// `theta_i = p * base^(-2i / headDim)`, `(x[2i], x[2i+1]) <- (x[2i] cos - x[2i+1] sin,
/// x[2i] sin + x[2i+1] cos)`.
///
/// Precision, exactly: activations are stored as Float between steps. Every dot product (the
/// matrix products, q·k) is accumulated in Double, in four interleaved partial sums, and rounded
/// to Float once. RMSNorm's mean of squares and scale, RoPE's angles, cos, sin and rotation,
/// SiLU and the gate product are computed in Double from the Float inputs and rounded once.
/// Softmax is in Double (max subtracted, exp, sum, divide) and the weighted sum of V is
/// accumulated in Double. The residual additions are Float + Float.
public struct ReferenceModel: Sendable {
    public let config: LlamaConfig
    let embedding: [Float]        // vocab × hidden
    let output: [Float]           // vocab × hidden (the embedding when tied)
    let outputNorm: [Float]
    let layers: [Layer]

    struct Layer: Sendable {
        var attnNorm: [Float], ffnNorm: [Float]
        var wq: [Float], wk: [Float], wv: [Float], wo: [Float]   // out × in, row-major
        var gate: [Float], up: [Float], down: [Float]
    }

    /// The attention inputs of one layer after RoPE (q, k) for a prompt, head-major:
    /// `q` is [headCount, tokens, headDim], `k` and `v` [kvHeadCount, tokens, headDim], flat.
    public struct LayerQKV: Sendable {
        public var layer: Int
        public var tokenCount: Int
        public var headDim: Int
        public var q: [Float], k: [Float], v: [Float]
        public var headCount: Int { q.count / max(1, tokenCount * headDim) }
        public var kvHeadCount: Int { k.count / max(1, tokenCount * headDim) }
    }

    /// Reads the configuration and dequantises every weight, checking each tensor's dimensions.
    /// - Throws: `ModelError`, `GGUFError` (missing keys or tensors, undequantisable types).
    public init(gguf file: GGUFFile) throws {
        let config = try LlamaConfig(gguf: file)
        let h = config.hiddenSize, f = config.feedForwardSize, kv = config.kvHeadCount * config.headDim
        func load(_ name: String, _ dimensions: [Int]) throws -> [Float] {
            let t = try file.tensor(named: name)
            guard t.dimensions == dimensions else {
                throw ModelError.tensorShape(path: file.path, tensor: name, expected: dimensions, found: t.dimensions)
            }
            return try file.dequantize(t)
        }
        self.config = config
        embedding = try load("token_embd.weight", [h, config.vocabSize])
        output = file.hasTensor(named: "output.weight") ? try load("output.weight", [h, config.vocabSize]) : embedding
        outputNorm = try load("output_norm.weight", [h])
        layers = try (0..<config.layerCount).map { i in
            let p = "blk.\(i)."
            return Layer(attnNorm: try load(p + "attn_norm.weight", [h]), ffnNorm: try load(p + "ffn_norm.weight", [h]),
                         wq: try load(p + "attn_q.weight", [h, h]), wk: try load(p + "attn_k.weight", [h, kv]),
                         wv: try load(p + "attn_v.weight", [h, kv]), wo: try load(p + "attn_output.weight", [h, h]),
                         gate: try load(p + "ffn_gate.weight", [h, f]), up: try load(p + "ffn_up.weight", [h, f]),
                         down: try load(p + "ffn_down.weight", [f, h]))
        }
    }

    /// The logits at every position: `result[p][t]` for token `t` after `tokens[0...p]`.
    /// - Precondition: every token is in `0..<config.vocabSize`.
    public func logits(tokens: [Int32]) -> [[Float]] {
        logits(tokens: tokens, positions: 0..<tokens.count)
    }

    /// The logits at `positions` only (the output projection is the largest product per token).
    /// - Precondition: every token is in `0..<config.vocabSize`; `positions` within the tokens.
    public func logits(tokens: [Int32], positions: Range<Int>) -> [[Float]] {
        precondition(positions.lowerBound >= 0 && positions.upperBound <= tokens.count,
                     "positions \(positions) outside the \(tokens.count) tokens")
        let x = forward(tokens: tokens, capture: nil)
        let h = config.hiddenSize
        let normed = Kernels.rmsNorm(Array(x[positions.lowerBound * h..<positions.upperBound * h]), weight: outputNorm,
                                     rows: positions.count, width: h, epsilon: config.rmsNormEpsilon)
        let flat = Kernels.matmul(normed, rows: positions.count, weight: output, outRows: config.vocabSize, inCount: h)
        return (0..<positions.count).map { Array(flat[$0 * config.vocabSize..<($0 + 1) * config.vocabSize]) }
    }

    /// Every layer's post-RoPE q and k and its v for a prompt (`layers` picks some), head-major.
    /// - Precondition: every token is in `0..<config.vocabSize`.
    public func attentionInputs(tokens: [Int32], layers wanted: Set<Int>? = nil) -> [LayerQKV] {
        var captured: [LayerQKV] = []
        let lastWanted = wanted.map { $0.max() ?? -1 } ?? config.layerCount - 1
        _ = forward(tokens: tokens, stopAfter: lastWanted) { layer, qkv in
            if wanted?.contains(layer) ?? true { captured.append(qkv) }
        }
        return captured
    }
}
