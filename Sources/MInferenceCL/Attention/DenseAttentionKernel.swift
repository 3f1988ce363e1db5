/// The dense FlashAttention-2 kernel (CLKernels/dense_attention.cl) for one problem on one device.
struct DenseAttentionKernel {
    static let file = "dense_attention.cl"
    let problem: AttentionProblem
    let config: KernelConfig

    var options: BuildOptions { config.buildOptions(problem: problem) }

    /// Enqueues the kernel over the layer's q, k, v into its output for the flattened query heads
    /// in `slots`; returns its event.
    func enqueue(context: ComputeContext, tensors: LayerTensors, slots: DeviceBuffer, slotCount: Int) throws -> CommandEvent {
        let program = try context.program(KernelSource.named(Self.file), options: options)
        let rowBlocks = (problem.queryLength + config.queryTile - 1) / config.queryTile
        return try context.launch(
            program, "dense_attention",
            global: [rowBlocks * config.threads, slotCount], local: [config.threads, 1],
            tensors.arguments + [.buffer(slots),
             .int(problem.queryLength), .int(problem.keyLength), .int(problem.headsQ), .int(problem.headsKV),
             .float(problem.scale * Float.log2e), .int(problem.causal ? 1 : 0)])
    }
}

/// The q, k, v and output of one layer call, as the kernels take them.
struct LayerTensors {
    var q: DeviceTensor
    var k: DeviceTensor
    var v: DeviceTensor
    var output: DeviceTensor

    /// q, k, v, o, then their layouts: the ATTENTION_TENSORS parameters (attention_path.h).
    var arguments: [KernelArgument] {
        [.buffer(q.buffer), .buffer(k.buffer), .buffer(v.buffer), .buffer(output.buffer),
         .layout(q.layout), .layout(k.layout), .layout(v.layout), .layout(output.layout)]
    }
}

extension Float {
    /// log2(e): the host folds it into the scale so kernels use exp2.
    static let log2e: Float = 1.442_695_040_888_963_4
}
