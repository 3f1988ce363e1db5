import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ReferenceModel {
    /// The residual stream after the layers (tokens × hidden, row-major); `capture` gets each
    /// layer's post-RoPE q, k and v, head-major. Stops after layer `stopAfter`.
    func forward(tokens: [Int32], stopAfter: Int? = nil, capture: ((Int, LayerQKV) -> Void)?) -> [Float] {
        let n = tokens.count, h = config.hiddenSize, d = config.headDim
        let kvWidth = config.kvHeadCount * d
        var x = [Float](repeating: 0, count: n * h)
        for (p, token) in tokens.enumerated() {
            let t = Int(token)
            precondition(t >= 0 && t < config.vocabSize, "token \(t) at position \(p) outside the vocabulary of \(config.vocabSize)")
            x.replaceSubrange(p * h..<(p + 1) * h, with: embedding[t * h..<(t + 1) * h])
        }
        let rope = Kernels.RoPETable(positions: n, headDim: d, base: config.ropeFreqBase)
        for (index, layer) in layers.enumerated() {
            if let stopAfter, index > stopAfter { break }
            let n1 = Kernels.rmsNorm(x, weight: layer.attnNorm, rows: n, width: h, epsilon: config.rmsNormEpsilon)
            var q = Kernels.matmul(n1, rows: n, weight: layer.wq, outRows: h, inCount: h)
            var k = Kernels.matmul(n1, rows: n, weight: layer.wk, outRows: kvWidth, inCount: h)
            let v = Kernels.matmul(n1, rows: n, weight: layer.wv, outRows: kvWidth, inCount: h)
            rope.apply(&q, rows: n, heads: config.headCount)
            rope.apply(&k, rows: n, heads: config.kvHeadCount)
            if let capture {
                capture(index, LayerQKV(layer: index, tokenCount: n, headDim: d,
                                        q: Kernels.headMajor(q, rows: n, heads: config.headCount, headDim: d),
                                        k: Kernels.headMajor(k, rows: n, heads: config.kvHeadCount, headDim: d),
                                        v: Kernels.headMajor(v, rows: n, heads: config.kvHeadCount, headDim: d)))
            }
            let attention = Kernels.causalAttention(q: q, k: k, v: v, rows: n, heads: config.headCount,
                                                    kvHeads: config.kvHeadCount, headDim: d)
            Kernels.add(&x, Kernels.matmul(attention, rows: n, weight: layer.wo, outRows: h, inCount: h))
            let n2 = Kernels.rmsNorm(x, weight: layer.ffnNorm, rows: n, width: h, epsilon: config.rmsNormEpsilon)
            let f = config.feedForwardSize
            let gate = Kernels.matmul(n2, rows: n, weight: layer.gate, outRows: f, inCount: h)
            let up = Kernels.matmul(n2, rows: n, weight: layer.up, outRows: f, inCount: h)
            let act = Kernels.swiGLU(gate: gate, up: up)
            Kernels.add(&x, Kernels.matmul(act, rows: n, weight: layer.down, outRows: h, inCount: f))
        }
        return x
    }
}

/// The numerical steps of `ReferenceModel`, on contiguous row-major Float arrays (precision as
/// `ReferenceModel` documents it).
enum Kernels {
    /// `sum(a[i] * b[i])` over `count` values, in Double, four interleaved partial sums.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= count {
            s0 += Double(a[i]) * Double(b[i])
            s1 += Double(a[i + 1]) * Double(b[i + 1])
            s2 += Double(a[i + 2]) * Double(b[i + 2])
            s3 += Double(a[i + 3]) * Double(b[i + 3])
            i += 4
        }
        while i < count {
            s0 += Double(a[i]) * Double(b[i])
            i += 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    /// `y[r][o] = dot(x row r, weight row o)`: x is rows × inCount, weight outRows × inCount,
    /// y rows × outRows. Blocks of weight rows run in parallel; each block walks all x rows
    /// (small enough to stay in cache) against its weight rows.
    static func matmul(_ x: [Float], rows: Int, weight: [Float], outRows: Int, inCount: Int) -> [Float] {
        precondition(x.count == rows * inCount && weight.count == outRows * inCount)
        let block = 16
        let blocks = (outRows + block - 1) / block
        return [Float](unsafeUninitializedCapacity: rows * outRows) { y, count in
            let yBase = y.baseAddress!
            x.withUnsafeBufferPointer { xp in
                weight.withUnsafeBufferPointer { wp in
                    let xBase = Shared(xp.baseAddress!), wBase = Shared(wp.baseAddress!), yBase = SharedMutable(yBase)
                    DispatchQueue.concurrentPerform(iterations: blocks) { b in
                        let o0 = b * block, o1 = min(outRows, o0 + block)
                        for r in 0..<rows {
                            let xr = xBase.address + r * inCount
                            for o in o0..<o1 {
                                yBase.address[r * outRows + o] = Float(dot(xr, wBase.address + o * inCount, inCount))
                            }
                        }
                    }
                }
            }
            count = rows * outRows
        }
    }

    /// Each row scaled by `1 / sqrt(mean(row²) + epsilon)` and by `weight`, in Double.
    static func rmsNorm(_ x: [Float], weight: [Float], rows: Int, width: Int, epsilon: Double) -> [Float] {
        var y = [Float](repeating: 0, count: rows * width)
        x.withUnsafeBufferPointer { xp in
            for r in 0..<rows {
                let row = xp.baseAddress! + r * width
                let scale = 1 / (dot(row, row, width) / Double(width) + epsilon).squareRoot()
                for i in 0..<width { y[r * width + i] = Float(Double(row[i]) * scale * Double(weight[i])) }
            }
        }
        return y
    }

    /// `silu(g) * u = g / (1 + exp(-g)) * u`, in Double.
    static func swiGLU(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { g, u in
            let gd = Double(g)
            return Float(gd / (1 + exp(-gd)) * Double(u))
        }
    }

    static func add(_ x: inout [Float], _ y: [Float]) {
        for i in x.indices { x[i] += y[i] }
    }

    /// cos and sin of `p * base^(-2i / headDim)` for every position and pair, in Double.
    struct RoPETable {
        let headDim: Int
        let cosines: [Double], sines: [Double]   // positions × headDim / 2

        init(positions: Int, headDim: Int, base: Double) {
            self.headDim = headDim
            let half = headDim / 2
            let frequencies = (0..<half).map { pow(base, -2 * Double($0) / Double(headDim)) }
            var c = [Double](repeating: 0, count: positions * half), s = c
            for p in 0..<positions {
                for i in 0..<half {
                    let angle = Double(p) * frequencies[i]
                    c[p * half + i] = cos(angle)
                    s[p * half + i] = sin(angle)
                }
            }
            cosines = c
            sines = s
        }

        /// Rotates the adjacent pairs of every head of x (rows × heads × headDim), row = position.
        func apply(_ x: inout [Float], rows: Int, heads: Int) {
            let half = headDim / 2
            for p in 0..<rows {
                for head in 0..<heads {
                    let base = (p * heads + head) * headDim
                    for i in 0..<half {
                        let a = Double(x[base + 2 * i]), b = Double(x[base + 2 * i + 1])
                        let c = cosines[p * half + i], s = sines[p * half + i]
                        x[base + 2 * i] = Float(a * c - b * s)
                        x[base + 2 * i + 1] = Float(a * s + b * c)
                    }
                }
            }
        }
    }

    /// rows × heads × headDim (token-major) to heads × rows × headDim.
    static func headMajor(_ x: [Float], rows: Int, heads: Int, headDim: Int) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            for h in 0..<heads {
                for i in 0..<headDim { y[(h * rows + r) * headDim + i] = x[(r * heads + h) * headDim + i] }
            }
        }
        return y
    }

    /// Causal softmax(q kᵀ / sqrt(headDim)) v per query head; q is rows × heads × headDim, k and v
    /// rows × kvHeads × headDim, the result rows × heads × headDim. Scores, softmax and the
    /// weighted sum of v are in Double.
    static func causalAttention(q: [Float], k: [Float], v: [Float], rows: Int, heads: Int, kvHeads: Int,
                                headDim: Int) -> [Float] {
        let group = heads / kvHeads, scale = 1 / Double(headDim).squareRoot()
        return [Float](unsafeUninitializedCapacity: q.count) { out, count in
            let outBase = out.baseAddress!
            q.withUnsafeBufferPointer { qp in
                k.withUnsafeBufferPointer { kp in
                    v.withUnsafeBufferPointer { vp in
                        let qBase = Shared(qp.baseAddress!), kBase = Shared(kp.baseAddress!)
                        let vBase = Shared(vp.baseAddress!), outBase = SharedMutable(outBase)
                        DispatchQueue.concurrentPerform(iterations: heads) { head in
                            let kvHead = head / group
                            var scores = [Double](repeating: 0, count: rows)
                            var acc = [Double](repeating: 0, count: headDim)
                            for i in 0..<rows {
                                let qi = qBase.address + (i * heads + head) * headDim
                                var maxScore = -Double.infinity
                                for j in 0...i {
                                    let s = dot(qi, kBase.address + (j * kvHeads + kvHead) * headDim, headDim) * scale
                                    scores[j] = s
                                    maxScore = max(maxScore, s)
                                }
                                var sum = 0.0
                                for j in 0...i {
                                    scores[j] = exp(scores[j] - maxScore)
                                    sum += scores[j]
                                }
                                for t in 0..<headDim { acc[t] = 0 }
                                for j in 0...i {
                                    let vj = vBase.address + (j * kvHeads + kvHead) * headDim, w = scores[j]
                                    for t in 0..<headDim { acc[t] += w * Double(vj[t]) }
                                }
                                let o = outBase.address + (i * heads + head) * headDim
                                for t in 0..<headDim { o[t] = Float(acc[t] / sum) }
                            }
                        }
                    }
                }
            }
            count = q.count
        }
    }
}

/// A pointer handed to `concurrentPerform`'s workers, which read (or write disjoint parts of) it
/// while the buffer it points into is alive.
struct Shared: @unchecked Sendable {
    let address: UnsafePointer<Float>
    init(_ address: UnsafePointer<Float>) { self.address = address }
}

struct SharedMutable: @unchecked Sendable {
    let address: UnsafeMutablePointer<Float>
    init(_ address: UnsafeMutablePointer<Float>) { self.address = address }
}
