import ArgumentParser
import MInferenceCL

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devices", abstract: "List OpenCL devices and mark the default.")

    @Option(name: .long, help: "Log level.")
    var logLevel: String = "warning"

    func run() throws {
        try reportingErrors {
            let devices = try ComputeDevice.all()
            if devices.isEmpty {
                print("no OpenCL devices found (install a driver, e.g. pocl-opencl-icd for the CPU)")
                return
            }
            let selector = DeviceSelector.fromEnvironment(Environment.variables)
            let chosen = try? selector.select(from: devices)
            for d in devices {
                let i = d.info
                let mark = d == chosen ? "*" : " "
                print("\(mark) [\(d.index)] \(d.platformIndex):\(d.indexInPlatform) \(i.name)")
                print("      platform: \(i.platformName) (\(i.platformVersion))")
                print("      vendor: \(i.vendor), type: \(i.kind.rawValue), driver: \(i.driverVersion)")
                print("      \(i.deviceVersion), \(i.openCLCVersion)")
                print("      compute units: \(i.computeUnits), clock: \(i.maxClockMHz) MHz, max work-group: \(i.maxWorkGroupSize)")
                print("      global memory: \(mib(i.globalMemoryBytes)) MiB, max allocation: \(mib(i.maxAllocationBytes)) MiB, local memory: \(i.localMemoryBytes / 1024) KiB")
                if let cc = i.nvidiaComputeCapability { print("      NVIDIA compute capability: \(cc)") }
                print("      attention path (f16/bf16, head dim 64/128): \(try attentionPath(d))")
                let notable = ["cl_khr_fp16", "cl_khr_fp64", "cl_nv_compiler_options", "cl_nv_device_attribute_query",
                               "cl_khr_subgroups", "cl_intel_subgroups", "cl_khr_int64_base_atomics"]
                let present = notable.filter(i.hasExtension)
                print("      extensions: \(present.isEmpty ? "none of note" : present.joined(separator: " ")) (\(i.extensions.count) in all)")
            }
            print("* = default (\(selector)); choose another with --device or \(DeviceSelector.environmentVariable)")
        }
    }

    private func mib(_ bytes: Int) -> Int { bytes / (1024 * 1024) }

    /// The tile path of the attention kernels on `device`; on Hopper this opens a context and
    /// runs its wgmma check, and says why the check failed if it did.
    private func attentionPath(_ device: ComputeDevice) throws -> String {
        guard device.info.isNVIDIA, let cc = device.info.nvidiaComputeCapability, cc.major >= 8 else { return "portable" }
        guard cc.major == 9 else { return "nvidia-mma" }
        let context = try ComputeContext(device: device)
        let path = context.tensorCorePath.rawValue
        if case .unavailable(let why) = context.wgmma { return "\(path) (\(why))" }
        return path
    }
}
