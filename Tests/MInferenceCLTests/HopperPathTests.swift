@testable import MInferenceCL
import Testing

/// The host side of the Hopper wgmma path, which runs without a Hopper GPU: the sm_90a patch of
/// stage-1 PTX, the path choice and its configuration, and the refusals on other devices. (The
/// kernels themselves run in `minference-bench check` on the H200: Benchmarks/RESULTS.md.)
@Suite("Hopper wgmma path (host side)")
struct HopperPathTests {
    /// Stage-1 PTX as NVIDIA's driver writes it: `.target sm_90, texmode_independent`, an entry
    /// with parameters and a `.reqntid` directive, sm_90a lines behind the marker.
    static let stageOne = """
        .version 9.0
        .target sm_90, texmode_independent
        .address_size 64

        .entry dense_attention(
        \t.param .u64 .ptr .global .align 2 dense_attention_param_0
        )
        .reqntid 288, 1, 1
        {
        \t// SM90A wgmma.fence.sync.aligned;
        \tmov.u32 %r1, %r2; // an ordinary comment stays
        \tret;
        }
        .entry second(
        )
        {
        \tret;
        }
        """

    @Test func patchRetargetsAndStripsMarkers() throws {
        let text = try Sm90aBuild().patch(ptx: Self.stageOne, file: "dense_attention.cl", device: "H200")
        #expect(text.contains(".target sm_90a, texmode_independent"))
        #expect(!text.contains(".target sm_90,"))
        #expect(!text.contains(Sm90aBuild.marker))
        #expect(text.contains("\twgmma.fence.sync.aligned;"))
        #expect(text.contains("// an ordinary comment stays"))
        #expect(!text.contains(".maxnreg"))
    }

    @Test func patchPutsARegisterCountOnEveryEntry() throws {
        let text = try Sm90aBuild(maxRegisters: 168).patch(ptx: Self.stageOne, file: "f.cl", device: "H200")
        #expect(text.contains(".reqntid 288, 1, 1\n.maxnreg 168\n{"))
        #expect(text.contains("\n)\n.maxnreg 168\n{\n\tret;"))
        #expect(text.ranges(of: ".maxnreg 168").count == 2)
    }

    @Test func patchRefusesOtherTargetsAndCounts() {
        let sm80 = Self.stageOne.replacing(".target sm_90,", with: ".target sm_80,")
        do {
            _ = try Sm90aBuild().patch(ptx: sm80, file: "f.cl", device: "A100")
            Issue.record("sm_80 PTX must be refused")
        } catch let error as ProgramBuildError {
            #expect(error.stage == .sm90aPatch)
            #expect(error.log.contains(".target sm_80"), "\(error.log)")
        } catch { Issue.record("\(error)") }
        #expect(throws: ProgramBuildError.self) { try Sm90aBuild(maxRegisters: 300).patch(ptx: Self.stageOne, file: "f.cl", device: "H200") }
        #expect(throws: ProgramBuildError.self) { try Sm90aBuild(maxRegisters: 64).patch(ptx: ".target sm_90,\n", file: "f.cl", device: "H200") }
    }

    static func device(vendor: String, capability: (Int, Int)?) -> DeviceInfo {
        DeviceInfo(platformName: "p", platformVersion: "OpenCL 3.0", name: vendor == "NVIDIA Corporation" ? "NVIDIA H200" : "cpu",
                   vendor: vendor, vendorID: vendor == "NVIDIA Corporation" ? 0x10DE : 0x8086, driverVersion: "1",
                   deviceVersion: "OpenCL 3.0", openCLCVersion: "OpenCL C 1.2", kind: .gpu, computeUnits: 132, maxClockMHz: 1980,
                   localMemoryBytes: 49152, globalMemoryBytes: 1 << 37, maxAllocationBytes: 1 << 35, maxWorkGroupSize: 1024,
                   extensions: [], nvidiaComputeCapability: capability.map { .init(major: $0.0, minor: $0.1) })
    }

    @Test func pathChoice() {
        let h200 = Self.device(vendor: "NVIDIA Corporation", capability: (9, 0))
        let table = TuningTable.standard
        #expect(table.config(for: h200, dtype: .f16, headDim: 128, wgmma: true).path == .nvidiaWGMMA)
        #expect(table.config(for: h200, dtype: .bf16, headDim: 64, wgmma: true).path == .nvidiaWGMMA)
        // the check failed: mma.sync; head dims and dtypes the tensor-core paths do not take: portable
        #expect(table.config(for: h200, dtype: .f16, headDim: 128, wgmma: false).path == .nvidiaMMA)
        #expect(table.config(for: h200, dtype: .f16, headDim: 96, wgmma: true).path == .portable)
        #expect(table.config(for: h200, dtype: .f32, headDim: 128, wgmma: true).path == .portable)
        #expect(table.config(for: h200, dtype: .f16, headDim: 128, wgmma: true, override: "path=nvidia-mma").path == .nvidiaMMA)
        let cpu = Self.device(vendor: "Intel", capability: nil)
        #expect(table.config(for: cpu, dtype: .f16, headDim: 128, wgmma: true).path == .portable)
    }

    @Test func configurationOfTheKernels() throws {
        let h200 = Self.device(vendor: "NVIDIA Corporation", capability: (9, 0))
        let config = TuningTable.standard.config(for: h200, dtype: .f16, headDim: 128, wgmma: true)
        let problem = try AttentionProblem(headsQ: 32, headsKV: 8, queryLength: 4096, keyLength: 4096, headDim: 128, inputDType: .f16)
        // dense / A-shape: 2 consumer warpgroups + a producer warpgroup; sparse: 1 + 2 producer warps over 64 rows
        #expect(config.queryTile == 128 && config.threads == 384)
        #expect(config.sparse.queryTile == 64 && config.sparse.threads == 192)
        #expect(config.sparse.buildOptions(problem: problem).sm90a == Sm90aBuild(maxRegisters: 168))
        // head dim 64: 128-key steps for dense and A-shape, 64-key steps for the sparse kernels
        let d64 = TuningTable.standard.config(for: h200, dtype: .f16, headDim: 64, wgmma: true)
        #expect(d64.keysPerStep == 128 && d64.sparse.keysPerStep == 64)
        let options = config.buildOptions(problem: problem)
        #expect(options.sm90a != nil)
        #expect(options.defines["NV_WGMMA"] == "1" && options.defines["WG_CONSUMERS"] == "2")
        #expect(config.sparse.buildOptions(problem: problem).defines["WG_CONSUMERS"] == "1")
        #expect(config.localMemoryBytes(headDim: 128) <= 227 * 1024)
        var tuned = config
        tuned.apply(override: "warpgroups=1,stages=3,maxnreg=168,producer_warps=2")
        #expect(tuned.queryTile == 64 && tuned.threads == 192 && tuned.stages == 3 && tuned.maxRegisters == 168)
        #expect(tuned.buildOptions(problem: problem).sm90a == Sm90aBuild(maxRegisters: 168))
        let mma = TuningTable.standard.config(for: h200, dtype: .f16, headDim: 128, wgmma: false)
        #expect(mma.buildOptions(problem: problem).sm90a == nil)
    }

    @Test("The wgmma check: available on Hopper; elsewhere it says why, and an sm_90a build is refused with its stage")
    func wgmmaCheck() throws {
        let engine = try TestDevice.engine()
        let info = engine.context.device.info
        if info.isNVIDIA, info.nvidiaComputeCapability == .init(major: 9, minor: 0) {
            #expect(engine.context.wgmma == .available)
            #expect(engine.context.tensorCorePath == .nvidiaWGMMA)
            return
        }
        guard case .unavailable(let why) = engine.context.wgmma else {
            Issue.record("wgmma reported available on \(info.name)")
            return
        }
        #expect(why.contains("compute capability 9.0"))
        #expect(engine.context.tensorCorePath != .nvidiaWGMMA)
        do {
            _ = try engine.context.program(KernelSource.named("wgmma_probe.cl"),
                                           options: BuildOptions(defines: ["NV_WGMMA": "1"], sm90a: Sm90aBuild()))
            Issue.record("an sm_90a build must be refused on \(info.name)")
        } catch let error as ProgramBuildError {
            #expect(error.stage == .sm90aSource)
            #expect(error.description.contains("compute capability 9.0"))
        }
    }
}
