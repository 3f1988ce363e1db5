import Foundation
import Synchronization
@testable import MInferenceCL
import Testing

/// Engines on different devices (PoCL and Intel's runtime in CI; else two contexts of one device),
/// used concurrently, one thread per device, each computing its part of a layer's heads: the
/// concatenated output equals the single-device run (bit for bit on one device kind).
@Suite("Several devices: a layer's heads split across engines")
struct MultiDeviceTests {
    @Test func headSplitEqualsOneDevice() throws {
        let all = try ComputeDevice.all()
        let first = try TestDevice.engine().context.device
        let second = all.first { $0.id != first.id } ?? first
        let engines = [AttentionEngine(context: try ComputeContext(device: first)), AttentionEngine(context: try ComputeContext(device: second))]
        let problem = try AttentionProblem(batch: 2, headsQ: 8, headsKV: 4, queryLength: 400, keyLength: 400, headDim: 64, inputDType: .f16)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2),
                                     .verticalSlash(vertical: 40, slash: 80), .blockSparse(blocks: 3), .aShape(sink: 4, window: 100), .dense])
        let options = SparseOptions(denseFallback: .never)
        let (q, k, v) = problem.normalInputs(seed: 8)
        let split = try HeadSplit(problem: problem, parts: 2)
        #expect(split.parts.map(\.kvHeads) == [0..<2, 2..<4] && split.parts.map(\.queryHeads) == [0..<4, 4..<8])

        let outputs = Mutex<[Int: Result<Tensor, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let result = Result {
                try engines[i].run(q: split.slice(q, part: i, query: true), k: split.slice(k, part: i, query: false),
                                   v: split.slice(v, part: i, query: false), plan: split.plan(plan, part: i), options: options).output
            }
            outputs.withLock { $0[i] = result }
        }
        let parts = try outputs.withLock { results in try (0..<2).map { try results[$0]!.get() } }
        let combined = try split.concatenate(parts)
        let (single, _) = try engines[0].run(q: q, k: k, v: v, plan: plan, options: options)
        if second.id == first.id {
            #expect(combined == single, "the split differs from one engine's run")
        } else {
            var metrics = ErrorMetrics()
            let a = combined.floats(), b = single.floats()
            for row in stride(from: 0, to: a.count, by: 64) {
                metrics.add(output: a[row..<(row + 64)], reference: b[row..<(row + 64)].map(Double.init))
            }
            #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem), "\(first.info.name) + \(second.info.name): \(metrics)")
        }
    }

    @Test func splitsThatCannotBe() throws {
        let problem = try AttentionProblem(headsQ: 8, headsKV: 2, queryLength: 10, keyLength: 10, headDim: 64, inputDType: .f16)
        #expect(throws: AttentionError.invalidArgument("cannot split 2 KV heads into 3 parts (1...2)")) {
            try HeadSplit(problem: problem, parts: 3)
        }
        let uneven = try HeadSplit(problem: try AttentionProblem(headsQ: 10, headsKV: 5, queryLength: 10, keyLength: 10, headDim: 64,
                                                                 inputDType: .f16), parts: 2)
        #expect(uneven.parts.map(\.kvHeads) == [0..<3, 3..<5] && uneven.parts.map(\.problem.headsQ) == [6, 4])
    }
}
