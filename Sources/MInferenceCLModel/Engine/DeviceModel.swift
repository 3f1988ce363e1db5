import MInferenceCL

/// A Llama-architecture model's prefill on one OpenCL device, as an engine runs it: weights
/// dequantised once by `ReferenceModel`, an fp32 residual stream, the products on `products`
/// (fp32 through CLBlast, or fp16 inputs with fp32 accumulation on NVIDIA tensor cores), the model
/// steps of CLKernels/model_ops.cl, and attention through `AttentionEngine.enqueue` on the device-resident
/// KV cache. No host round trip between layers: a chunk's commands are all enqueued, and the host
/// reads only the logits it asked for.
///
/// The KV cache holds `capacity` tokens per layer as `[layers, capacity, Hkv, headDim]` (the keys
/// and the values each), the layout engines keep; attention reads it through `DeviceTensor` views
/// (logical `[Hkv, Nk, d]`, FlashAttention's token-major strides), and q and the attention output
/// are views of the products' `[tokens, heads * headDim]` rows. A prefill runs in chunks: chunk c
/// is a problem with Nq = its length and Nk = the tokens cached so far (chunked prefill).
public final class DeviceModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let engine: AttentionEngine
    /// Where the products run (their inputs' dtype: `products.inputDType`).
    public let products: ProductPath
    /// Tokens the KV cache holds per layer.
    public let capacity: Int
    /// Tokens prefilled so far (the next chunk's first position).
    public private(set) var position = 0
    /// Device time of the attention calls of the last `prefill` (from each layer's first attention
    /// command to its last, summed), in milliseconds; nil on a queue without profiling.
    public private(set) var attentionMilliseconds: Double?

    let ops: ModelOps
    let workspace: Workspace
    /// The fp32 token embeddings (the embedding step's table) and the LM head in the products' dtype.
    let embedding: DeviceBuffer, output: DeviceBuffer, outputNorm: DeviceBuffer
    let layers: [Layer]
    let keyCache: DeviceBuffer, valueCache: DeviceBuffer

    struct Layer {
        var attnNorm: DeviceBuffer, ffnNorm: DeviceBuffer
        var wq: DeviceBuffer, wk: DeviceBuffer, wv: DeviceBuffer, wo: DeviceBuffer
        var gate: DeviceBuffer, up: DeviceBuffer, down: DeviceBuffer
    }

    /// The element type of q and the KV cache that attention reads: `.f32` (default), or `.f16`,
    /// which the tensor-core attention paths take (q and k, v rounded from fp32; the attention
    /// output stays fp32).
    public let attentionDType: DType

    /// Uploads `model`'s weights to `engine`'s device and allocates a KV cache of `capacity` tokens
    /// in `attentionDType` (`.f32` or `.f16`). `products`: where the products run (nil, the
    /// default: `ProductPath.preferred(for:)` the engine's context).
    /// - Throws: `AttentionError.dtype` for another attention dtype, `AttentionError.invalidArgument`
    ///   for a product path the device does not have, `DeviceMemoryError` / `OpenCLError` when the
    ///   device cannot hold the weights and the cache.
    public init(model: ReferenceModel, engine: AttentionEngine, capacity: Int, attentionDType: DType = .f32,
                products: ProductPath? = nil) throws {
        guard attentionDType == .f32 || attentionDType == .f16 else {
            throw AttentionError.dtype("the model's attention runs in f32 or f16, not \(attentionDType)")
        }
        let context = engine.context
        let products = products ?? .preferred(for: context)
        guard products.isAvailable(on: context) else {
            throw AttentionError.invalidArgument("\(context.device.info.name) has no \(products.rawValue) path for the products")
        }
        self.attentionDType = attentionDType
        self.products = products
        func upload(_ values: [Float], _ label: String) throws -> DeviceBuffer {
            try DeviceBuffer(context: context, copying: values, label: label)
        }
        // Matrices in the products' input dtype (fp16: rounded to nearest even, once).
        func uploadMatrix(_ values: [Float], _ label: String) throws -> DeviceBuffer {
            products == .tensorCores ? try DeviceBuffer(context: context, copying: values.map { Float16($0) }, label: label)
                : try upload(values, label)
        }
        self.config = model.config
        self.engine = engine
        self.capacity = capacity
        self.ops = ModelOps(context: context, products: products)
        self.workspace = Workspace(context: context)
        embedding = try upload(model.embedding, "token_embd")
        output = model.output == model.embedding && products == .clblast ? embedding : try uploadMatrix(model.output, "output")
        outputNorm = try upload(model.outputNorm, "output_norm")
        layers = try model.layers.enumerated().map { i, l in
            Layer(attnNorm: try upload(l.attnNorm, "blk.\(i).attn_norm"), ffnNorm: try upload(l.ffnNorm, "blk.\(i).ffn_norm"),
                  wq: try uploadMatrix(l.wq, "blk.\(i).attn_q"), wk: try uploadMatrix(l.wk, "blk.\(i).attn_k"),
                  wv: try uploadMatrix(l.wv, "blk.\(i).attn_v"), wo: try uploadMatrix(l.wo, "blk.\(i).attn_output"),
                  gate: try uploadMatrix(l.gate, "blk.\(i).ffn_gate"), up: try uploadMatrix(l.up, "blk.\(i).ffn_up"),
                  down: try uploadMatrix(l.down, "blk.\(i).ffn_down"))
        }
        let cacheBytes = config.layerCount * capacity * config.kvHeadCount * config.headDim * attentionDType.byteCount
        keyCache = try DeviceBuffer(context: context, byteCount: cacheBytes, label: "key cache")
        valueCache = try DeviceBuffer(context: context, byteCount: cacheBytes, label: "value cache")
    }

    /// Forgets the cached tokens (the next prefill starts at position 0).
    public func reset() { position = 0 }

    /// Prefills `tokens` after the cached ones, `chunk` tokens per attention call (0: all at once),
    /// each layer's attention with `plan(layer)` (default dense); returns the logits of the last
    /// `lastLogits` positions of `tokens`, `[min(lastLogits, tokens.count)][vocab]`.
    /// - Throws: `AttentionError` for tokens outside the vocabulary or past the cache's capacity,
    ///   and the errors of `AttentionEngine.enqueue`.
    public func prefill(tokens: [Int32], chunk: Int = 0, lastLogits: Int = 1, options: SparseOptions = SparseOptions(),
                        plan: (Int) -> LayerPlan? = { _ in nil }) throws -> [[Float]] {
        guard !tokens.isEmpty else { return [] }
        guard position + tokens.count <= capacity else {
            throw AttentionError.invalidArgument("\(position) cached + \(tokens.count) new tokens exceed the cache's \(capacity)")
        }
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw AttentionError.invalidArgument("token \(tokens[bad]) at \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        let step = chunk > 0 ? chunk : tokens.count
        attentionSpans = []
        defer { attentionSpans = [] }
        var logits: [[Float]] = []
        var start = 0
        // The wanted positions are a suffix of the prompt: a suffix of each chunk they reach.
        let firstWanted = tokens.count - min(max(lastLogits, 0), tokens.count)
        while start < tokens.count {
            let count = min(step, tokens.count - start)
            let rows = max(0, start + count - max(start, firstWanted))
            logits += try run(chunk: Array(tokens[start..<(start + count)]), logitRows: rows, options: options, plan: plan)
            start += count
        }
        try engine.context.finish()
        if engine.context.profiling {
            attentionMilliseconds = try attentionSpans.reduce(0) { total, span in
                let (begin, end) = try span.interval()
                return total + Double(end - begin) / 1e6
            }
        } else {
            attentionMilliseconds = nil
        }
        return logits
    }

    /// The attention calls of the running prefill, each from its opening marker to its last command.
    private var attentionSpans: [CommandEvent] = []
    /// Where `attentionInputs` collects every layer's post-RoPE q: `[layers, tokens, Hq * d]` fp32.
    private var queryCapture: (buffer: DeviceBuffer, tokens: Int)?

    /// Prefills `tokens` from position 0 (the cache is reset first) and returns every layer's
    /// post-RoPE q `[Hq, N, d]` and k, v `[Hkv, N, d]` as attention read them (k and v in
    /// `attentionDType`, widened to fp32), in the layout of `ReferenceModel.attentionInputs` and of
    /// `minference-cl search`'s calibration folders; the device forward pass of a long calibration
    /// prompt (the CPU reference takes minutes at 8K tokens). Attention runs `plan` (default dense).
    /// - Throws: the errors of `prefill`, and `DeviceMemoryError` for the `[layers, N, Hq * d]` fp32
    ///   capture of q.
    public func attentionInputs(tokens: [Int32], chunk: Int = 0, options: SparseOptions = SparseOptions(),
                                plan: (Int) -> LayerPlan? = { _ in nil }) throws -> [ReferenceModel.LayerQKV] {
        reset()
        let n = tokens.count, h = config.hiddenSize, d = config.headDim, hkv = config.kvHeadCount
        guard n > 0 else { return [] }
        queryCapture = (try DeviceBuffer(context: engine.context, byteCount: config.layerCount * n * h * 4, label: "q capture"), n)
        defer { queryCapture = nil }
        _ = try prefill(tokens: tokens, chunk: chunk, lastLogits: 0, options: options, plan: plan)
        let queries = try queryCapture!.buffer.read(as: Float.self, count: config.layerCount * n * h)
        // A layer's first n cached tokens (rows p < n of [capacity, Hkv, d]), widened to fp32.
        func cached(_ cache: DeviceBuffer, layer: Int) throws -> [Float] {
            func rows<T: BitwiseCopyable>(_: T.Type) throws -> [T] {
                var out = [T](unsafeUninitializedCapacity: n * hkv * d) { _, count in count = n * hkv * d }
                try out.withUnsafeMutableBytes { try cache.read(into: $0, offset: layer * capacity * hkv * d * attentionDType.byteCount) }
                return out
            }
            return attentionDType == .f16 ? try rows(Float16.self).map { Float($0) } : try rows(Float.self)
        }
        // Token-major [N, heads, d] rows to head-major [heads, N, d].
        func headMajor(_ source: [Float], base: Int, heads: Int) -> [Float] {
            var out = [Float](repeating: 0, count: heads * n * d)
            for t in 0..<n {
                for head in 0..<heads {
                    let from = base + (t * heads + head) * d, to = (head * n + t) * d
                    for c in 0..<d { out[to + c] = source[from + c] }
                }
            }
            return out
        }
        return try (0..<config.layerCount).map { layer in
            ReferenceModel.LayerQKV(layer: layer, tokenCount: n, headDim: d,
                                    q: headMajor(queries, base: layer * n * h, heads: config.headCount),
                                    k: headMajor(try cached(keyCache, layer: layer), base: 0, heads: hkv),
                                    v: headMajor(try cached(valueCache, layer: layer), base: 0, heads: hkv))
        }
    }

    /// One chunk through every layer; returns the logits of its last `logitRows` rows.
    func run(chunk tokens: [Int32], logitRows: Int, options: SparseOptions, plan: (Int) -> LayerPlan?) throws -> [[Float]] {
        let context = engine.context
        let n = tokens.count, h = config.hiddenSize, d = config.headDim, f = config.feedForwardSize
        let kv = config.kvHeadCount * d, p0 = position, nk = p0 + n
        func scratch(_ floats: Int, _ label: String) throws -> DeviceBuffer { try workspace.buffer("model " + label, byteCount: floats * 4) }
        // The products' inputs, in their dtype.
        let productDType = ops.products.inputDType
        func productInput(_ count: Int, _ label: String) throws -> DeviceBuffer {
            try workspace.buffer("model " + label + " " + productDType.rawValue, byteCount: count * productDType.byteCount)
        }
        let x = try scratch(n * h, "x"), normed = try productInput(n * h, "normed")
        let q = try scratch(n * h, "q"), k = try scratch(n * kv, "k"), v = try scratch(n * kv, "v")
        let attention = try productInput(n * h, "attention")
        let gate = try scratch(n * f, "gate"), up = try scratch(n * f, "up"), act = try productInput(n * f, "act")
        try ops.embed(table: embedding, tokens: try DeviceBuffer(context: context, copying: tokens, label: "tokens"), count: n, width: h, out: x)
        let problem = try AttentionProblem(headsQ: config.headCount, headsKV: config.kvHeadCount, queryLength: n, keyLength: nk,
                                           headDim: d, inputDType: attentionDType, outputDType: productDType)
        let half = attentionDType == .f16
        let attentionQ = half ? try workspace.buffer("model q f16", byteCount: n * h * 2) : q
        let eps = Float(config.rmsNormEpsilon), theta = Float(config.ropeFreqBase)
        for (index, layer) in layers.enumerated() {
            try ops.rmsNorm(x, weight: layer.attnNorm, rows: n, width: h, eps: eps, out: normed)
            try ops.linear(normed, weight: layer.wq, rows: n, inputs: h, outputs: h, out: q)
            try ops.linear(normed, weight: layer.wk, rows: n, inputs: h, outputs: kv, out: k)
            try ops.linear(normed, weight: layer.wv, rows: n, inputs: h, outputs: kv, out: v)
            try ops.rope(q, rows: n, heads: config.headCount, headDim: d, firstPosition: p0, theta: theta)
            try ops.rope(k, rows: n, heads: config.kvHeadCount, headDim: d, firstPosition: p0, theta: theta)
            if let (capture, tokens) = queryCapture {
                try capture.copy(from: q, sourceOffset: 0, offset: (index * tokens + p0) * h * 4, byteCount: n * h * 4)
            }
            // The chunk's keys and values join the cache: rows p0 ..< nk of this layer.
            let layerBase = index * capacity * kv
            if half {
                try ops.toHalf(q, count: n * h, out: attentionQ)
                try ops.toHalf(k, count: n * kv, out: keyCache, outOffset: layerBase + p0 * kv)
                try ops.toHalf(v, count: n * kv, out: valueCache, outOffset: layerBase + p0 * kv)
            } else {
                try keyCache.copy(from: k, sourceOffset: 0, offset: (layerBase + p0 * kv) * 4, byteCount: n * kv * 4)
                try valueCache.copy(from: v, sourceOffset: 0, offset: (layerBase + p0 * kv) * 4, byteCount: n * kv * 4)
            }
            let rowsOf = { (buffer: DeviceBuffer, dtype: DType, heads: Int, tokens: Int, offset: Int) throws -> DeviceTensor in
                let shape = [heads, tokens, d]
                return try DeviceTensor(buffer: buffer, dtype: dtype, shape: shape, strides: DeviceTensor.tokenMajorStrides(shape), offset: offset)
            }
            let opening = try context.marker(waitingFor: [], label: "attention start")
            let last = try engine.enqueue(problem: problem, q: rowsOf(attentionQ, attentionDType, config.headCount, n, 0),
                               k: rowsOf(keyCache, attentionDType, config.kvHeadCount, nk, layerBase),
                               v: rowsOf(valueCache, attentionDType, config.kvHeadCount, nk, layerBase),
                               output: rowsOf(attention, productDType, config.headCount, n, 0),
                               plan: plan(index) ?? .uniform(.dense, heads: config.headCount), options: options, workspace: workspace)
            attentionSpans.append(CommandEvent(spanning: opening, last, label: "attention, layer \(index)"))
            try ops.linear(attention, weight: layer.wo, rows: n, inputs: h, outputs: h, out: x, accumulate: true)
            try ops.rmsNorm(x, weight: layer.ffnNorm, rows: n, width: h, eps: eps, out: normed)
            try ops.linear(normed, weight: layer.gate, rows: n, inputs: h, outputs: f, out: gate)
            try ops.linear(normed, weight: layer.up, rows: n, inputs: h, outputs: f, out: up)
            try ops.swiglu(gate: gate, up: up, count: n * f, out: act)
            try ops.linear(act, weight: layer.down, rows: n, inputs: f, outputs: h, out: x, accumulate: true)
        }
        position = nk
        guard logitRows > 0 else { return [] }
        try ops.rmsNorm(x, weight: outputNorm, rows: n, width: h, eps: eps, out: normed)
        let logits = try scratch(logitRows * config.vocabSize, "logits")
        try ops.linear(normed, weight: output, rows: logitRows, inputs: h, outputs: config.vocabSize, out: logits, xRow: n - logitRows)
        let values = try logits.read(as: Float.self, count: logitRows * config.vocabSize)
        return (0..<logitRows).map { Array(values[($0 * config.vocabSize)..<(($0 + 1) * config.vocabSize)]) }
    }
}
