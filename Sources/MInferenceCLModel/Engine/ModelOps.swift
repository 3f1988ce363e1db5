import MInferenceCL

/// The steps of a Llama-style forward pass around attention, on one context's queue
/// (CLKernels/model_ops.cl; the products through CLBlast or linear_nv_mma.cl, by `products`):
/// fp32 activations `[tokens, width]` row-major, the products' inputs in `products.inputDType`,
/// nothing waited for. Each call enqueues its commands and returns.
package struct ModelOps: Sendable {
    package let context: ComputeContext
    package let products: ProductPath
    static let rowThreads = 128

    package init(context: ComputeContext, products: ProductPath = .clblast) {
        self.context = context
        self.products = products
    }

    private var productInputHalf: Int32 { products == .tensorCores ? 1 : 0 }

    private func program() throws -> Program {
        try context.program(KernelSource.named("model_ops.cl"), options: BuildOptions(defines: ["ROW_THREADS": "\(Self.rowThreads)"]))
    }

    /// `out[t] = table[tokens[t]]` for `tokens.count` tokens of `width` floats.
    package func embed(table: DeviceBuffer, tokens: DeviceBuffer, count: Int, width: Int, out: DeviceBuffer) throws {
        try context.launch(try program(), "embed_rows", global: [width, count], local: nil,
                           [.buffer(table), .buffer(tokens), .buffer(out), .int(width)])
    }

    /// RMSNorm of `rows` rows of `width` floats, scaled by `weight` (`[width]`); `out` is a
    /// product's input (`products.inputDType`).
    package func rmsNorm(_ x: DeviceBuffer, weight: DeviceBuffer, rows: Int, width: Int, eps: Float, out: DeviceBuffer) throws {
        try context.launch(try program(), "rms_norm", global: [Self.rowThreads, rows], local: [Self.rowThreads, 1],
                           [.buffer(x), .buffer(weight), .buffer(out), .int(width), .float(eps), .int(productInputHalf)])
    }

    /// Rotary embedding in place on `[rows, heads, headDim]`, adjacent pairs, row t at position
    /// `firstPosition + t`.
    package func rope(_ x: DeviceBuffer, rows: Int, heads: Int, headDim: Int, firstPosition: Int, theta: Float) throws {
        try context.launch(try program(), "rope_pairs", global: [headDim / 2, heads, rows], local: nil,
                           [.buffer(x), .int(heads), .int(headDim), .int(firstPosition), .float(theta)])
    }

    /// `out = silu(gate) * up` over `count` floats; `out` is a product's input (`products.inputDType`).
    package func swiglu(gate: DeviceBuffer, up: DeviceBuffer, count: Int, out: DeviceBuffer) throws {
        try context.launch(try program(), "swiglu", global: [count], local: nil,
                           [.buffer(gate), .buffer(up), .buffer(out), .ulong(UInt64(count)), .int(productInputHalf)])
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

    /// `y = x W^T` (`accumulate`: `y += x W^T`, the residual add): x `[rows, inputs]` and W
    /// `[outputs, inputs]` (a GGUF weight's row order) in `products.inputDType`, y `[rows, outputs]`
    /// fp32. `xRow`: the first row of x used (the rows before it are skipped). The tensor-core path
    /// needs `inputs` and `xRow * inputs` multiples of 8 (16-byte copies).
    package func linear(_ x: DeviceBuffer, weight: DeviceBuffer, rows: Int, inputs: Int, outputs: Int, out: DeviceBuffer,
                        xRow: Int = 0, accumulate: Bool = false) throws {
        switch products {
        case .clblast:
            _ = try CLBlastGEMM.multiplyTransposed(context: context, m: rows, n: outputs, k: inputs, a: x, aOffsets: [xRow * inputs],
                                                   b: weight, bOffsets: [0], c: out, cOffsets: [0], beta: accumulate ? 1 : 0)
        case .tensorCores:
            guard inputs % 8 == 0 else {
                throw AttentionError.invalidArgument("tensor-core products need a multiple of 8 inputs, not \(inputs)")
            }
            let program = try context.program(KernelSource.named("linear_nv_mma.cl"), options: BuildOptions(defines: [:]))
            try context.launch(program, "linear_nv_mma", global: [(outputs + 127) / 128 * 256, (rows + 127) / 128], local: [256, 1],
                               [.buffer(x), .ulong(UInt64(xRow * inputs)), .buffer(weight), .ulong(0), .buffer(out), .ulong(0),
                                .int(Int32(rows)), .int(Int32(outputs)), .int(Int32(inputs)), .int(accumulate ? 1 : 0)])
        }
    }
}
