import Dispatch
import Foundation
@testable import MInferenceCL
import Synchronization
import Testing

/// One engine used from many tasks and threads at once; the program cache under concurrent
/// requests; the on-disk program cache with damaged files and with several processes.
@Suite("Concurrency and the program caches")
struct ConcurrencyTests {
    static let problem = try! AttentionProblem(batch: 2, headsQ: 4, headsKV: 2, queryLength: 150, keyLength: 150, headDim: 64, inputDType: .f16)
    static let plan = LayerPlan(heads: [.verticalSlash(vertical: 30, slash: 60), .aShape(sink: 8, window: 40), .blockSparse(blocks: 1), .dense])

    @Test("Runs from 8 Swift tasks at once equal the serial run, bit for bit",
          arguments: [DeviceProfile.EstimationBackend.fused, .clblast])
    func tasksMatchSerial(_ estimation: DeviceProfile.EstimationBackend) async throws {
        let engine = try TestDevice.engine()
        let inputs = try RandomInputs(problem: Self.problem, seed: 150)
        let options = SparseOptions(denseFallback: .never, estimation: estimation)
        let serial = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: Self.plan, options: options)
        let dense = try engine.dense(q: inputs.q, k: inputs.k, v: inputs.v).output
        let results = try await withThrowingTaskGroup(of: (Tensor, [Int], Tensor).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let run = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: Self.plan, options: options)
                    return (run.output, run.report.coveredPairs, try engine.dense(q: inputs.q, k: inputs.k, v: inputs.v).output)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 8)
        for (output, pairs, denseOutput) in results {
            #expect(output == serial.output, "a concurrent sparse run differs from the serial one")
            #expect(pairs == serial.report.coveredPairs)
            #expect(denseOutput == dense, "a concurrent dense run differs from the serial one")
        }
    }

    @Test("Runs from 6 threads at once, each with its own device tensors, equal the serial run")
    func threadsMatchSerial() throws {
        let engine = try TestDevice.engine()
        let inputs = try RandomInputs(problem: Self.problem, seed: 151)
        let options = SparseOptions(denseFallback: .never, collectIndices: true, estimation: .fused)
        let serial = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: Self.plan, options: options)
        let outputs = Mutex<[Int: Result<Tensor, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            let result = Result { () throws -> Tensor in
                let context = engine.context
                let q = try DeviceTensor(context: context, copying: inputs.q), k = try DeviceTensor(context: context, copying: inputs.k)
                let v = try DeviceTensor(context: context, copying: inputs.v)
                let out = try DeviceTensor(context: context, shape: Self.problem.queryShape, dtype: .f16)
                try out.poison()
                let report = try engine.run(problem: Self.problem, q: q, k: k, v: v, output: out, plan: Self.plan, options: options)
                #expect(report.indices.verticalSlash.map(\.verticals) == serial.report.indices.verticalSlash.map(\.verticals))
                return try out.download()
            }
            outputs.withLock { $0[i] = result }
        }
        let all = outputs.withLock { $0 }
        #expect(all.count == 6)
        for (i, result) in all {
            switch result {
            case .success(let output): #expect(output == serial.output, "thread \(i) differs from the serial run")
            case .failure(let error): Issue.record("thread \(i): \(error)")
            }
        }
    }

    @Test("The program cache builds a program once when 8 threads ask for it at once")
    func programCacheUnderConcurrency() throws {
        let device = try TestDevice.engine().context.device
        let context = try ComputeContext(device: device, diskCache: nil)
        let source = KernelSource(file: "scale.cl", text: "__kernel void scale(__global float* x) { x[get_global_id(0)] *= FACTOR; }\n")
        let programs = Mutex<[Int: ObjectIdentifier]>([:])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                // Threads 0-3 share one key, 4-7 another.
                let program = try context.program(source, options: BuildOptions(defines: ["FACTOR": i < 4 ? "2.0f" : "3.0f"]))
                programs.withLock { $0[i] = ObjectIdentifier(program) }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let ids = programs.withLock { $0 }
        #expect(ids.count == 8)
        #expect(Set((0..<4).compactMap { ids[$0] }).count == 1, "one key built more than once")
        #expect(Set((4..<8).compactMap { ids[$0] }).count == 1, "one key built more than once")
        #expect(ids[0] != ids[4], "two keys share a program")
        #expect(context.programs.count == 2)
    }

    @Test("A damaged disk cache file is ignored and rebuilt",
          arguments: ["flipped byte", "truncated", "empty", "garbage", "another key", "binary the driver rejects"])
    func damagedDiskCache(_ damage: String) throws {
        let device = try TestDevice.engine().context.device
        let folder = try TemporaryFolder("disk-cache")
        defer { folder.remove() }
        let cache = DiskProgramCache(directory: folder.path)
        let source = KernelSource(file: "scale.cl", text: "__kernel void scale(__global float* x) { x[get_global_id(0)] *= FACTOR; }\n")
        func runScale(_ factor: String) throws -> (key: ProgramKey, values: [Float]) {
            let context = try ComputeContext(device: device, diskCache: cache)
            let program = try context.program(source, options: BuildOptions(defines: ["FACTOR": factor]))
            let buffer = try DeviceBuffer(context: context, copying: [Float](repeating: 1.5, count: 64))
            try context.launch(program, "scale", global: [64], local: nil, [.buffer(buffer)]).wait()
            return (program.key, try buffer.read(as: Float.self, count: 64))
        }
        let (key, first) = try runScale("2.0f")
        #expect(first == [Float](repeating: 3, count: 64))
        let path = cache.path(for: key)
        let stored = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(DiskProgramCache.decode(stored, key: key) != nil, "the first run did not store a valid file")
        var damaged = stored
        switch damage {
        case "flipped byte": damaged[stored.count / 2] ^= 0x5a
        case "truncated": damaged = Array(stored.prefix(stored.count / 3))
        case "empty": damaged = []
        case "garbage": damaged = (0..<stored.count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        case "another key":
            let (otherKey, _) = try runScale("5.0f")
            damaged = [UInt8](try Data(contentsOf: URL(fileURLWithPath: cache.path(for: otherKey))))
        default:
            // Valid framing and checksum around bytes that are not a program binary.
            damaged = DiskProgramCache.encode(Array("not a program binary".utf8) + [UInt8](repeating: 0xAB, count: 200), key: key)
        }
        try Data(damaged).write(to: URL(fileURLWithPath: path))
        let (_, second) = try runScale("2.0f")
        #expect(second == first, "the rebuilt program computes something else")
        let rewritten = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(DiskProgramCache.decode(rewritten, key: key) != nil, "the damaged file was not replaced by a valid one")
    }

    @Test("Four processes sharing a cold disk cache all succeed with the same output")
    func processesShareDiskCache() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("shared-cache")
        defer { folder.remove() }
        for (name, bytes) in CommandLineTests.standardFiles { _ = try folder.write(name, bytes) }
        let cacheDir = folder.file("cache")
        let results = Mutex<[Int: ProcessResult]>([:])
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            do {
                let result = try runProcess(tool, ["attention", "--q", folder.file("q.npy"), "--k", folder.file("k.npy"), "--v", folder.file("v.npy"),
                                                   "--out", folder.file("out\(i).npy"), "--pattern", "dense"],
                                            environment: ["MINFERENCECL_CACHE_DIR": cacheDir], timeout: 300)
                results.withLock { $0[i] = result }
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(errors.withLock { $0 }.isEmpty)
        for (i, result) in results.withLock({ $0 }) { #expect(result.status == 0, "process \(i): \(result)") }
        let outputs = try (0..<4).map { try NPYFile.read(folder.file("out\($0).npy")) }
        #expect(outputs.allSatisfy { $0 == outputs[0] })
        let files = (try? FileManager.default.contentsOfDirectory(atPath: cacheDir)) ?? []
        #expect(!files.isEmpty && files.allSatisfy { $0.hasSuffix(".clbin") }, "cache folder holds \(files)")
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: cacheDir + "/" + file)))
            #expect(Array(bytes.prefix(8)) == DiskProgramCache.magic, "\(file) is not a cache file")
        }
    }
}
