import ArgumentParser
import MInferenceCL
import MInferenceCLModel

/// `minference-bench products`: the model's matrix products on each path the device has (CLBlast
/// fp32; NVIDIA tensor cores, fp16 inputs with fp32 accumulation), checked against float64 on odd
/// shapes, then timed at the SmolLM2-135M layer shapes (OpenCL profiling events, medians).
struct ProductsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "products",
        abstract: "The model's products (C = A B^T, and C += A B^T) on every path: float64 checks, then timings.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, parsing: .upToNextOption, help: "Token counts (rows of A) of the timings.")
    var tokens: [Int] = [32768, 131072]
    @Option(name: .long) var warmup = 2
    @Option(name: .long) var repeats = 10

    /// (rows M, inputs K, outputs N): odd sizes, tails of every tile, one row, the LM head.
    static let checkShapes = [(1, 576, 576), (131, 40, 200), (777, 1536, 576), (1000, 576, 1536), (64, 576, 49152), (300, 192, 67)]
    /// SmolLM2-135M's products per layer (K, N) and the LM head.
    static let modelShapes = [("q/o", 576, 576), ("k/v", 576, 192), ("gate/up", 576, 1536), ("down", 1536, 576)]

    func run() throws {
        let context = try deviceOptions.engine().context
        let paths = ProductPath.allCases.filter { $0.isAvailable(on: context) }
        print("device: \(context.device); paths: \(paths.map(\.rawValue).joined(separator: ", "))")
        var failures = 0
        var random = SeededRandom(seed: 7)
        func uniform() -> Float { Float(random.next() >> 40) / Float(1 << 24) * 2 - 1 }
        for path in paths {
            for (m, k, n) in Self.checkShapes {
                for accumulate in [false, true] {
                    // fp16-representable inputs, so both paths multiply the same numbers.
                    let a = (0..<(m * k)).map { _ in Float(Float16(uniform())) }
                    let b = (0..<(n * k)).map { _ in Float(Float16(uniform())) }
                    let c0 = (0..<(m * n)).map { _ in uniform() }
                    let got = try multiply(context: context, path: path, a: a, b: b, c: accumulate ? c0 : nil, m: m, k: k, n: n)
                    var error = 0.0, norm = 0.0, maxError = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = accumulate ? Double(c0[i * n + j]) : 0
                            for p in 0..<k { sum += Double(a[i * k + p]) * Double(b[j * k + p]) }
                            let e = abs(Double(got[i * n + j]) - sum)
                            error += e * e
                            norm += sum * sum
                            maxError = max(maxError, e.isNaN ? .infinity : e)
                        }
                    }
                    let relative = (error / max(norm, 1e-300)).squareRoot()
                    // fp32 accumulation of k products: a few ulps of the sum's magnitude.
                    let passed = relative.isFinite && relative <= 1e-5
                    if !passed { failures += 1 }
                    print("check \(path.rawValue) M \(m) K \(k) N \(n)\(accumulate ? " +=" : ""): rel L2 \(Format.scientific(relative)), "
                          + "max |err| \(Format.scientific(maxError)) \(passed ? "within 1e-5" : "FAIL (limit 1e-5)")")
                }
            }
        }
        var rows: [[String]] = []
        for m in tokens {
            for (name, k, n) in Self.modelShapes {
                var row = ["\(name) M \(m) K \(k) N \(n)"]
                var times: [Double] = []
                for path in paths {
                    let dtype = path.inputDType
                    let a = try DeviceBuffer(context: context, byteCount: m * k * dtype.byteCount, label: "a")
                    let b = try DeviceBuffer(context: context, byteCount: n * k * dtype.byteCount, label: "b")
                    let c = try DeviceBuffer(context: context, byteCount: m * n * 4, label: "c")
                    try a.fill(pattern: dtype == .f32 ? 0x3C00_0000 : 0x2C00_2C00) // small finite values
                    try b.fill(pattern: dtype == .f32 ? 0x3C00_0000 : 0x2C00_2C00)
                    let ops = ModelOps(context: context, products: path)
                    var samples: [Double] = []
                    for r in 0..<(warmup + max(1, repeats)) {
                        let start = try context.marker(waitingFor: [], label: "start")
                        try ops.linear(a, weight: b, rows: m, inputs: k, outputs: n, out: c)
                        let end = try context.marker(waitingFor: [], label: "end")
                        let (begin, finish) = try CommandEvent(spanning: start, end, label: name).interval()
                        if r >= warmup { samples.append(Double(finish - begin) / 1e6) }
                    }
                    let time = samples.sorted()[samples.count / 2]
                    times.append(time)
                    let tflops = 2.0 * Double(m) * Double(k) * Double(n) / (time * 1e-3) / 1e12
                    row += [Format.fixed(time, 3), Format.fixed(tflops, 1)]
                }
                if times.count == 2 { row.append(Format.fixed(times[0] / times[1], 2) + "x") }
                rows.append(row)
            }
        }
        print(Table(header: ["product"] + paths.flatMap { ["\($0.rawValue) ms", "TFLOP/s"] } + (paths.count == 2 ? ["tensor-core speedup"] : []),
                    rows: rows).render())
        if failures > 0 { throw ValidationError("\(failures) product checks failed") }
    }

    private func multiply(context: ComputeContext, path: ProductPath, a: [Float], b: [Float], c: [Float]?, m: Int, k: Int, n: Int) throws -> [Float] {
        func upload(_ values: [Float]) throws -> DeviceBuffer {
            path == .tensorCores ? try DeviceBuffer(context: context, copying: values.map { Float16($0) }, label: "input")
                : try DeviceBuffer(context: context, copying: values, label: "input")
        }
        let out = try c.map { try DeviceBuffer(context: context, copying: $0, label: "c") }
            ?? DeviceBuffer(context: context, byteCount: m * n * 4, label: "c")
        if c == nil { try out.fill(pattern: 0x7FC0_0000) } // NaN poison
        try ModelOps(context: context, products: path).linear(try upload(a), weight: try upload(b), rows: m, inputs: k, outputs: n,
                                                              out: out, accumulate: c != nil)
        return try out.read(as: Float.self, count: m * n)
    }
}
