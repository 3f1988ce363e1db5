import COpenCL
import Foundation
import MInferenceCL
import Testing

// The README's engine example, verbatim between the markers (a test below keeps them equal).
// README-ENGINE-EXAMPLE-BEGIN
/// Attention for an engine that owns its OpenCL context, device, queue and buffers. The K and V
/// caches are one cl_mem each for all layers, [layers, B, capacity, Hkv, d] fp16 (every layer in
/// FlashAttention's [B, N, H, d] order); a prefill chunk's q and output are [B, Nq, Hq, d]. The
/// chunk's queries are the last Nq of the Nk tokens cached so far.
final class EngineAttention {
    let engine: AttentionEngine
    let workspace: Workspace  // shared by every layer: after the first call, no layer allocates
    let batch: Int, heads: Int, kvHeads: Int, headDim: Int, capacity: Int

    init(context: cl_context, device: cl_device_id, queue: cl_command_queue,
         batch: Int, heads: Int, kvHeads: Int, headDim: Int, capacity: Int) throws {
        let compute = try ComputeContext(wrapping: context, device: device, queue: queue)  // retains all three
        engine = AttentionEngine(context: compute)
        workspace = Workspace(context: compute)
        (self.batch, self.heads, self.kvHeads, self.headDim, self.capacity) = (batch, heads, kvHeads, headDim, capacity)
    }

    /// Enqueues `layer`'s attention behind `ready` (the engine's event that wrote q and the new
    /// cache rows) and returns at once; the engine's next kernels wait for the returned event.
    func enqueue(layer: Int, plan: LayerPlan, q: cl_mem, kCache: cl_mem, vCache: cl_mem, output: cl_mem,
                 queries: Int, keys: Int, ready: cl_event, options: SparseOptions = SparseOptions()) throws -> CommandEvent {
        let problem = try AttentionProblem(batch: batch, headsQ: heads, headsKV: kvHeads, queryLength: queries,
                                           keyLength: keys, headDim: headDim, inputDType: .f16)
        let cache = [batch, kvHeads, capacity, headDim]  // one layer's cache as [B, H, N, d]
        func chunk(_ mem: cl_mem) throws -> DeviceTensor {  // [B, Nq, Hq, d] in memory
            try DeviceTensor(wrapping: mem, dtype: .f16, shape: problem.queryShape,
                             strides: DeviceTensor.tokenMajorStrides(problem.queryShape))
        }
        func cached(_ mem: cl_mem) throws -> DeviceTensor {  // the first Nk of `capacity` tokens
            try DeviceTensor(wrapping: mem, dtype: .f16, shape: problem.keyShape,
                             strides: DeviceTensor.tokenMajorStrides(cache), offset: layer * cache.reduce(1, *))
        }
        return try engine.enqueue(problem: problem, q: chunk(q), k: cached(kCache), v: cached(vCache), output: chunk(output),
                                  plan: plan, options: options, workspace: workspace,
                                  waitingFor: [CommandEvent(retaining: ready)])
    }
}
// README-ENGINE-EXAMPLE-END

@Suite("README engine example")
struct ReadmeEngineExampleTests {
    /// Two layers of a chunk (queries at positions 128..<300 of a 400-token cache, batch 2, GQA)
    /// on the caller's context, queue without profiling and buffers: each layer's output equals
    /// the contiguous host-tensor run bit for bit, and afterwards each buffer holds only the
    /// caller's reference.
    @Test("The engine example runs a chunked prefill on caller-owned objects")
    func exampleRuns() throws {
        let reference = try TestDevice.engine()
        let (layers, batch, heads, kvHeads, d, capacity) = (2, 2, 4, 2, 64, 400)
        let (start, keys) = (128, 300)
        let problem = try AttentionProblem(batch: batch, headsQ: heads, headsKV: kvHeads, queryLength: keys - start, keyLength: keys,
                                           headDim: d, inputDType: .f16)
        let plans = [LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2)]),
                     LayerPlan(heads: [.blockSparse(blocks: 1), .verticalSlash(vertical: 40, slash: 100), .aShape(sink: 4, window: 100), .dense])]
        let options = SparseOptions(denseFallback: .never)
        let inputs = (0..<layers).map { problem.normalInputs(seed: 70 + UInt64($0)) }

        // The caller's caches: every layer's keys and values in its [B, capacity, Hkv, d] block,
        // NaN in the rows not filled yet (the kernels must not read them).
        let nan: [UInt8] = [0x00, 0x7e] // f16 quiet NaN, little-endian
        let rowBytes = kvHeads * d * 2
        var kCache = [UInt8](repeating: 0, count: layers * batch * capacity * rowBytes)
        for i in stride(from: 0, to: kCache.count, by: 2) { kCache[i + 1] = nan[1] }
        var vCache = kCache
        for (layer, (_, k, v)) in inputs.enumerated() {
            let (kBytes, vBytes) = (k.tokenMajorBytes(), v.tokenMajorBytes())
            for b in 0..<batch {
                let from = b * keys * rowBytes, to = (layer * batch + b) * capacity * rowBytes
                kCache.replaceSubrange(to..<(to + keys * rowBytes), with: kBytes[from..<(from + keys * rowBytes)])
                vCache.replaceSubrange(to..<(to + keys * rowBytes), with: vBytes[from..<(from + keys * rowBytes)])
            }
        }
        let outputBytes = problem.queryShape.reduce(1, *) * 2
        let caller = try CallerObjects(device: reference.context.clDevice)
        let memK = try caller.buffer(kCache), memV = try caller.buffer(vCache)
        let memQ = try inputs.map { try caller.buffer($0.q.tokenMajorBytes()) }
        let memO = try (0..<layers).map { _ in try caller.buffer((0..<(outputBytes / 2)).flatMap { _ in nan }) }
        do {
            let attention = try EngineAttention(context: caller.context, device: caller.device, queue: caller.queue,
                                                batch: batch, heads: heads, kvHeads: kvHeads, headDim: d, capacity: capacity)
            var last: CommandEvent?
            for layer in 0..<layers {
                // Stands for the engine's own command that wrote this layer's q and cache rows.
                var ready: cl_event?
                #expect(clEnqueueMarkerWithWaitList(caller.queue, 0, nil, &ready) == CL_SUCCESS)
                last = try attention.enqueue(layer: layer, plan: plans[layer], q: memQ[layer], kCache: memK, vCache: memV,
                                             output: memO[layer], queries: problem.queryLength, keys: keys, ready: try #require(ready),
                                             options: options)
                clReleaseEvent(ready)
            }
            try #require(last).wait()
        }
        #expect(clFinish(caller.queue) == CL_SUCCESS)
        for layer in 0..<layers {
            let (q, k, v) = inputs[layer]
            let (expected, _) = try reference.run(q: q, k: k, v: v, plan: plans[layer], options: options)
            #expect(caller.read(memO[layer], count: outputBytes) == expected.tokenMajorBytes(),
                    "layer \(layer): the caller's [B, Nq, Hq, d] output differs from the contiguous run")
        }
        for mem in [memK, memV] + memQ + memO { #expect(CallerObjects.referenceCount(mem) == 1) }
    }

    @Test("README.md shows exactly the engine code this file compiles")
    func readmeMatches() throws {
        let file = Self.sourceFile()
        let here = try String(contentsOfFile: file, encoding: .utf8)
        let root = String(file[..<file.range(of: "/Tests/")!.lowerBound])
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let begin = here.range(of: "// README-ENGINE-EXAMPLE-BEGIN\n")!.upperBound
        let end = here.range(of: "// README-ENGINE-EXAMPLE-END")!.lowerBound
        let code = String(here[begin..<end])
        #expect(readme.contains("```swift\nimport COpenCL\nimport MInferenceCL\n\n" + code + "```"),
                "README.md's engine example differs from ReadmeEngineExampleTests.swift")
    }

    static func sourceFile(_ file: String = #filePath) -> String { file }
}
