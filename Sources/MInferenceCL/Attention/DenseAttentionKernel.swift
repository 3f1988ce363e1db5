/// The dense FlashAttention-2 kernel (CLKernels/dense_attention.cl) for one problem on one device.
struct DenseAttentionKernel {
    static let file = "dense_attention.cl"
    let problem: AttentionProblem
    let config: KernelConfig

    /// Enqueues the kernel over the layer's q, k, v into its output for the flattened query heads
    /// in `slots`; returns its events (one per NONFINITE_KEYS variant).
    func enqueue(context: ComputeContext, tensors: LayerTensors, slots: DeviceBuffer, slotCount: Int) throws -> [CommandEvent] {
        let rowBlocks = (problem.queryLength + config.queryTile - 1) / config.queryTile
        return try tensors.launch(
            "dense_attention", file: Self.file, options: config.buildOptions(problem: problem), context: context,
            global: [rowBlocks * config.threads, slotCount], local: [config.threads, 1],
            [.buffer(slots), .int(problem.queryLength), .int(problem.keyLength), .int(problem.headsQ), .int(problem.headsKV),
             .float(problem.scale * Float.log2e), .int(problem.causal ? 1 : 0)])
    }
}

/// The q, k, v and output of one layer call, as the kernels take them, with the call's non-finite flags.
struct LayerTensors {
    var q: DeviceTensor
    var k: DeviceTensor
    var v: DeviceTensor
    var output: DeviceTensor
    var nonFinite: NonFiniteFlags

    /// `options` with CONTIGUOUS_ROWS (attention_path.h) when every tensor's rows are d elements
    /// apart: the kernels then address rows with constant strides.
    func rowOptions(_ options: BuildOptions) -> BuildOptions {
        let d = q.shape.last!
        guard [q, k, v, output].allSatisfy({ $0.layout.tokenStride == d || $0.shape[$0.shape.count - 2] == 1 }) else { return options }
        var options = options
        options.defines["CONTIGUOUS_ROWS"] = "1"
        return options
    }

    /// q, k, v, o, their layouts, then the key flags: the ATTENTION_TENSORS parameters
    /// (attention_path.h).
    var arguments: [KernelArgument] {
        [.buffer(q.buffer), .buffer(k.buffer), .buffer(v.buffer), .buffer(output.buffer),
         .layout(q.layout), .layout(k.layout), .layout(v.layout), .layout(output.layout)] + nonFinite.arguments
    }

    /// Enqueues attention kernel `name` of `file` over these tensors (`arguments`: the kernel's
    /// parameters after ATTENTION_TENSORS), once per NONFINITE_KEYS variant the flags ask for on
    /// a tensor-core path, once with the run-time test (2) on the portable path after a scan;
    /// returns their events.
    func launch(_ name: String, file: String, options: BuildOptions, context: ComputeContext, global: [Int], local: [Int],
                _ arguments: [KernelArgument]) throws -> [CommandEvent] {
        let tensorCores = options.defines["NV_MMA"] == "1" || options.defines["NV_WGMMA"] == "1"
        let variants = tensorCores || nonFinite.variants == [0] ? nonFinite.variants : [2]
        return try variants.map { variant in
            var variantOptions = rowOptions(options)
            if variant != 0 { variantOptions.defines["NONFINITE_KEYS"] = "\(variant)" }
            let program = try context.program(KernelSource.named(file), options: variantOptions)
            return try context.launch(program, name, global: global, local: local, self.arguments + arguments)
        }
    }

    /// The same call with other views of its tensors (a part of the rows or keys starting at key
    /// 0, so the flags still index them).
    func with(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor) -> LayerTensors {
        LayerTensors(q: q, k: k, v: v, output: output, nonFinite: nonFinite)
    }
}

extension Float {
    /// log2(e): the host folds it into the scale so kernels use exp2.
    static let log2e: Float = 1.442_695_040_888_963_4
}
