import Foundation
@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// The forward pass's steps around attention (CLKernels/model_ops.cl, CLBlast products) against
/// float64 on the host, on fresh random inputs with odd widths; outputs poisoned first.
@Suite("Model steps: embedding, RMSNorm, RoPE, SwiGLU, residual, products")
struct ModelOpsTests {
    let context: ComputeContext
    let ops: ModelOps
    init() throws {
        context = try TestDevice.engine().context
        ops = ModelOps(context: context)
    }

    func upload(_ values: [Float]) throws -> DeviceBuffer { try DeviceBuffer(context: context, copying: values, label: "values") }
    func poisoned(_ count: Int) throws -> DeviceBuffer { try upload([Float](repeating: .nan, count: count)) }
    func random(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededRandom(seed: seed)
        return generator.normals(count)
    }

    func expectClose(_ got: [Float], _ want: [Double], _ what: String, tolerance: Double = 1e-5) {
        var metrics = ErrorMetrics()
        metrics.add(output: got, reference: want)
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= tolerance, "\(what): \(metrics)")
    }

    @Test func embedding() throws {
        let (vocab, width) = (50, 37)
        let table = random(vocab * width, seed: 1)
        let tokens: [Int32] = [3, 0, 49, 3, 17]
        let out = try poisoned(tokens.count * width)
        try ops.embed(table: try upload(table), tokens: try DeviceBuffer(context: context, copying: tokens), count: tokens.count,
                      width: width, out: out)
        let want = tokens.flatMap { t in table[(Int(t) * width)..<(Int(t) * width + width)].map(Double.init) }
        #expect(try out.read(as: Float.self, count: want.count).map(Double.init) == want)
    }

    @Test(arguments: [1, 7, 300]) func rmsNorm(rows: Int) throws {
        let width = 576
        let x = random(rows * width, seed: 2), weight = random(width, seed: 3)
        let out = try poisoned(rows * width)
        try ops.rmsNorm(try upload(x), weight: try upload(weight), rows: rows, width: width, eps: 1e-5, out: out)
        var want: [Double] = []
        for t in 0..<rows {
            let row = x[(t * width)..<((t + 1) * width)].map(Double.init)
            let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(width) + 1e-5).squareRoot()
            want += row.enumerated().map { $1 * scale * Double(weight[$0]) }
        }
        expectClose(try out.read(as: Float.self, count: want.count), want, "rms_norm")
    }

    @Test func rope() throws {
        let (rows, heads, d, first) = (5, 3, 64, 1000)
        let x = random(rows * heads * d, seed: 4)
        let buffer = try upload(x)
        try ops.rope(buffer, rows: rows, heads: heads, headDim: d, firstPosition: first, theta: 100_000)
        var want = x.map(Double.init)
        for t in 0..<rows {
            for h in 0..<heads {
                for i in 0..<(d / 2) {
                    let angle = Double(first + t) * pow(100_000.0, -2.0 * Double(i) / Double(d))
                    let at = (t * heads + h) * d + 2 * i
                    let (a, b) = (want[at], want[at + 1])
                    want[at] = a * cos(angle) - b * sin(angle)
                    want[at + 1] = a * sin(angle) + b * cos(angle)
                }
            }
        }
        // Angles up to ~1000 rad: fp32 argument reduction leaves ~1e-4 of the angle.
        expectClose(try buffer.read(as: Float.self, count: want.count), want, "rope", tolerance: 2e-4)
    }

    @Test func swigluAndResidual() throws {
        let count = 1537
        let gate = random(count, seed: 5), up = random(count, seed: 6), residual = random(count, seed: 7)
        let out = try poisoned(count)
        try ops.swiglu(gate: try upload(gate), up: try upload(up), count: count, out: out)
        let want = zip(gate, up).map { g, u in Double(g) / (1 + exp(-Double(g))) * Double(u) }
        expectClose(try out.read(as: Float.self, count: count), want, "swiglu")
        let x = try upload(residual)
        try ops.add(x, out, count: count)
        expectClose(try x.read(as: Float.self, count: count), zip(residual, want).map { Double($0) + $1 }, "add")
    }

    @Test func linear() throws {
        let (rows, inputs, outputs) = (9, 576, 193)
        let x = random(rows * inputs, seed: 8), w = random(outputs * inputs, seed: 9)
        let out = try poisoned(rows * outputs)
        try ops.linear(try upload(x), weight: try upload(w), rows: rows, inputs: inputs, outputs: outputs, out: out)
        var want = [Double](repeating: 0, count: rows * outputs)
        for r in 0..<rows {
            for o in 0..<outputs {
                var sum = 0.0
                for i in 0..<inputs { sum += Double(x[r * inputs + i]) * Double(w[o * inputs + i]) }
                want[r * outputs + o] = sum
            }
        }
        expectClose(try out.read(as: Float.self, count: want.count), want, "linear")
    }
}
