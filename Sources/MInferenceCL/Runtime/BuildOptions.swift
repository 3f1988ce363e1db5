/// The `-D` preamble and compiler flags of one program build. Sorted, so equal option sets give
/// equal command lines and cache keys.
package struct BuildOptions: Sendable, Hashable, CustomStringConvertible {
    package var defines: [String: String]
    package var flags: [String]
    /// Build for sm_90a in two stages (`Sm90aBuild`): NVIDIA devices of compute capability 9.0
    /// only. nil: the driver's ordinary build.
    package var sm90a: Sm90aBuild?

    package init(defines: [String: String] = [:], flags: [String] = [], sm90a: Sm90aBuild? = nil) {
        self.defines = defines
        self.flags = flags
        self.sm90a = sm90a
    }

    /// The options of `clBuildProgram` (of stage 1 for an sm_90a build).
    package var commandLine: String {
        (defines.keys.sorted().map { "-D\($0)=\(defines[$0]!)" } + flags).joined(separator: " ")
    }

    package var description: String { commandLine + (sm90a.map { " [\($0)]" } ?? "") }
}
