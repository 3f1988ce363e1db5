import MInferenceCL

/// The steps of a Llama-style forward pass around attention, on one context's queue
/// (CLKernels/model_ops.cl, and CLBlast for the products): fp32 activations `[tokens, width]`
/// row-major, nothing waited for. Each call enqueues its commands and returns.
package struct ModelOps: Sendable {
    package let context: ComputeContext
    static let rowThreads = 128

    package init(context: ComputeContext) { self.context = context }

    private func program() throws -> Program {
        try context.program(KernelSource.named("model_ops.cl"), options: BuildOptions(defines: ["ROW_THREADS": "\(Self.rowThreads)"]))
    }

    /// `out[t] = table[tokens[t]]` for `tokens.count` tokens of `width` floats.
    package func embed(table: DeviceBuffer, tokens: DeviceBuffer, count: Int, width: Int, out: DeviceBuffer) throws {
        try context.launch(try program(), "embed_rows", global: [width, count], local: nil,
                           [.buffer(table), .buffer(tokens), .buffer(out), .int(width)])
    }

    /// RMSNorm of `rows` rows of `width` floats, scaled by `weight` (`[width]`).
    package func rmsNorm(_ x: DeviceBuffer, weight: DeviceBuffer, rows: Int, width: Int, eps: Float, out: DeviceBuffer) throws {
        try context.launch(try program(), "rms_norm", global: [Self.rowThreads, rows], local: [Self.rowThreads, 1],
                           [.buffer(x), .buffer(weight), .buffer(out), .int(width), .float(eps)])
    }

    /// Rotary embedding in place on `[rows, heads, headDim]`, adjacent pairs, row t at position
    /// `firstPosition + t`.
    package func rope(_ x: DeviceBuffer, rows: Int, heads: Int, headDim: Int, firstPosition: Int, theta: Float) throws {
        try context.launch(try program(), "rope_pairs", global: [headDim / 2, heads, rows], local: nil,
                           [.buffer(x), .int(heads), .int(headDim), .int(firstPosition), .float(theta)])
    }

    /// `out = silu(gate) * up` over `count` floats.
    package func swiglu(gate: DeviceBuffer, up: DeviceBuffer, count: Int, out: DeviceBuffer) throws {
        try context.launch(try program(), "swiglu", global: [count], local: nil,
                           [.buffer(gate), .buffer(up), .buffer(out), .ulong(UInt64(count))])
    }

    /// `x += y` over `count` floats.
    package func add(_ x: DeviceBuffer, _ y: DeviceBuffer, count: Int) throws {
        try context.launch(try program(), "add_in_place", global: [count], local: nil, [.buffer(x), .buffer(y), .ulong(UInt64(count))])
    }

    /// `y[yOffset ..< yOffset + count] = fp16(x[0 ..< count])`, rounded to nearest even.
    package func toHalf(_ x: DeviceBuffer, count: Int, out: DeviceBuffer, outOffset: Int = 0) throws {
        try context.launch(try program(), "to_half", global: [count], local: nil,
                           [.buffer(x), .buffer(out), .ulong(UInt64(outOffset)), .ulong(UInt64(count))])
    }

    /// `y = x W^T`: x `[rows, inputs]`, W `[outputs, inputs]` (a GGUF weight's row order), y
    /// `[rows, outputs]`, fp32 through CLBlast.
    /// `xRow`: the first row of x used (the rows before it are skipped).
    package func linear(_ x: DeviceBuffer, weight: DeviceBuffer, rows: Int, inputs: Int, outputs: Int, out: DeviceBuffer,
                        xRow: Int = 0) throws {
        _ = try CLBlastGEMM.multiplyTransposed(context: context, m: rows, n: outputs, k: inputs, a: x, aOffsets: [xRow * inputs],
                                               b: weight, bOffsets: [0], c: out, cOffsets: [0])
    }
}
