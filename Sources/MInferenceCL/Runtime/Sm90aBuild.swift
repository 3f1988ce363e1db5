/// The second stage of a program built for NVIDIA's sm_90a (Hopper's `wgmma`, `setmaxnreg`).
///
/// NVIDIA's OpenCL compiler targets sm_90 and rejects sm_90a instructions, and it does not honour
/// `-cl-nv-arch sm_90a`. A kernel therefore writes each sm_90a line behind the PTX comment marker
/// `// SM90A ` (the `SM90A()` macro of `attention_nv_wgmma.h`); the driver's ordinary build
/// (stage 1: OpenCL C to PTX) accepts the comments, and this patch turns its PTX into sm_90a PTX,
/// which `clCreateProgramWithBinary` + `clBuildProgram` assemble (stage 2). The procedure and what
/// was measured with it are in `docs/NVIDIA-OPENCL.md`. The program caches keep the patched PTX,
/// so a second run does not rebuild.
package struct Sm90aBuild: Sendable, Hashable, CustomStringConvertible {
    /// The comment marker in front of each sm_90a line of inline PTX.
    package static let marker = "// SM90A "

    /// Registers per thread to declare on every entry (`.maxnreg`), nil for the assembler's own
    /// choice. `setmaxnreg` needs a count at entry, and a cap lets more work-groups share an SM.
    package var maxRegisters: Int?

    package init(maxRegisters: Int? = nil) {
        self.maxRegisters = maxRegisters
    }

    package var description: String { "sm_90a" + (maxRegisters.map { " maxnreg=\($0)" } ?? "") }

    /// The sm_90a program text for the sm_90 PTX `ptx` of stage 1: the markers removed, the target
    /// retargeted, and `.maxnreg` inserted before the body of every entry when `maxRegisters` is set.
    /// Throws `ProgramBuildError` (stage 2) when `ptx` is not the PTX this patch expects.
    package func patch(ptx: String, file: String, device: String) throws -> String {
        func refuse(_ why: String) -> ProgramBuildError {
            ProgramBuildError(file: file, options: description, device: device, status: "unexpected stage-1 PTX", log: why,
                              stage: .sm90aPatch)
        }
        guard ptx.contains(".target sm_90,") || ptx.contains(".target sm_90\n") else {
            let target = ptx.split(separator: "\n").first { $0.hasPrefix(".target") }.map(String.init) ?? "no .target line"
            throw refuse("stage 1 produced \(target); the sm_90a patch retargets `.target sm_90` (compute capability 9.0 only)")
        }
        var text = ptx.replacing(Self.marker, with: "")
        text = text.replacing(".target sm_90,", with: ".target sm_90a,")
        text = text.replacing(".target sm_90\n", with: ".target sm_90a\n")
        if let maxRegisters {
            guard (24...255).contains(maxRegisters) else { throw refuse("maxnreg \(maxRegisters) is outside 24...255") }
            text = try Self.insertingBeforeEntryBodies(".maxnreg \(maxRegisters)", into: text, refuse: refuse)
        }
        return text
    }

    /// Inserts `line` between each `.entry` header (parameters and directives) and its `{`.
    static func insertingBeforeEntryBodies(_ line: String, into text: String, refuse: (String) -> ProgramBuildError) throws -> String {
        var out = ""
        var rest = Substring(text)
        var entries = 0
        while let entry = rest.firstRange(of: ".entry ") {
            guard let body = rest[entry.upperBound...].firstRange(of: "\n{") else { throw refuse("an .entry without a body") }
            out += rest[..<body.lowerBound]
            out += "\n" + line
            rest = rest[body.lowerBound...]
            entries += 1
        }
        guard entries > 0 else { throw refuse("no .entry to put \(line) on") }
        return out + rest
    }
}
