import Foundation
import MInferenceCL
import Testing

/// The command-line tool on bad input: every case exits non-zero with exactly one line on stderr,
/// `minference-cl: error: ...` naming the problem (exit 1; 64 for a malformed command line),
/// never a crash or a hang, and leaves no output file behind.
@Suite("Command line: bad input")
struct CommandLineTests {
    /// What a case's input folder holds and how the tool is called.
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// Files to create: name -> bytes.
        var files: [String: [UInt8]] = [:]
        /// Arguments after `attention`; `$D` is replaced by the case's folder.
        var arguments: [String]
        var environment: [String: String] = [:]
        /// Part of the message the error line must contain.
        var message: String
        var exitCode: Int32 = 1
        var testDescription: String { name }
    }

    static let standardFiles: [String: [UInt8]] = [
        "q.npy": npy(shape: [3, 37, 64]), "k.npy": npy(shape: [1, 37, 64]), "v.npy": npy(shape: [1, 37, 64]),
    ]
    static let standardArguments = ["--q", "$D/q.npy", "--k", "$D/k.npy", "--v", "$D/v.npy", "--out", "$D/out.npy"]

    /// A case on the standard q/k/v with some files replaced and extra arguments (`--q`, `--k`,
    /// `--v` and `--out` in `extra` replace the standard ones).
    static func standard(_ name: String, replacing files: [String: [UInt8]] = [:], _ extra: [String] = [],
                         environment: [String: String] = [:], message: String, exitCode: Int32 = 1) -> Case {
        var arguments = standardArguments
        var rest: [String] = []
        var i = 0
        while i < extra.count {
            if ["--q", "--k", "--v", "--out"].contains(extra[i]), i + 1 < extra.count, let at = arguments.firstIndex(of: extra[i]) {
                arguments[at + 1] = extra[i + 1]
                i += 2
            } else {
                rest.append(extra[i])
                i += 1
            }
        }
        return Case(name: name, files: standardFiles.merging(files) { $1 }, arguments: arguments + rest, environment: environment,
                    message: message, exitCode: exitCode)
    }

    static let cases: [Case] = [
        // shapes
        standard("q vs k/v head dim", replacing: ["k.npy": npy(shape: [1, 37, 32]), "v.npy": npy(shape: [1, 37, 32])],
                 message: "head dim of q (64) differs from head dim of k/v (32)"),
        standard("k vs v length", replacing: ["v.npy": npy(shape: [1, 36, 64])], message: "k [1, 37, 64] and v [1, 36, 64] must have the same shape"),
        standard("Hq % Hkv != 0", replacing: ["k.npy": npy(shape: [2, 37, 64]), "v.npy": npy(shape: [2, 37, 64])],
                 message: "query heads (3) must be a multiple of KV heads (2)"),
        standard("wrong rank", replacing: ["q.npy": npy(shape: [37, 64])], message: "q has rank 2"),
        standard("N = 0", replacing: ["q.npy": npy(shape: [3, 0, 64]), "k.npy": npy(shape: [1, 0, 64]), "v.npy": npy(shape: [1, 0, 64])],
                 message: "N must be at least 1"),
        standard("unsupported head dim", replacing: ["q.npy": npy(shape: [3, 37, 12]), "k.npy": npy(shape: [1, 37, 12]), "v.npy": npy(shape: [1, 37, 12])],
                 message: "head dim 12: supported head dims are multiples of 8"),
        standard("q, k, v dtypes differ", replacing: ["q.npy": npy(shape: [3, 37, 64], dtype: .f16)], message: "must share one dtype"),
        standard("sparse with Nq > Nk", replacing: ["q.npy": npy(shape: [3, 40, 64])], ["--pattern", "a-shape"], message: "needs Nq <= Nk"),
        standard("sparse non-causal", ["--pattern", "vertical-slash", "--non-causal"], message: "defined for causal attention only"),
        // dtypes
        standard("float64 file", replacing: ["q.npy": npy(descr: "<f8", shape: [3, 37, 64], elementBytes: 8)], message: "unsupported dtype '<f8'"),
        standard("int16 words without --bf16", replacing: ["k.npy": npy(descr: "<i2", shape: [1, 37, 64], elementBytes: 2)],
                 message: "read as bfloat16 only in bf16 mode"),
        standard("unknown --out-dtype", ["--out-dtype", "f64"], message: "unknown --out-dtype 'f64'"),
        // budgets
        standard("zero budget", ["--pattern", "a-shape", "--sink", "0"], message: "a-shape sink must be > 0, got 0"),
        standard("negative budget", ["--pattern", "vertical-slash", "--vertical=-5"], message: "vertical budget must be > 0, got -5"),
        standard("absurd budget", ["--pattern", "block-sparse", "--blocks", "3000000000"], message: "block-sparse budget above 2147483647"),
        standard("budget of another pattern", ["--pattern", "dense", "--sink", "4"], message: "--sink does not apply to --pattern dense"),
        standard("unknown pattern", ["--pattern", "diagonal"], message: "unknown --pattern 'diagonal'"),
        // .npy files
        standard("truncated .npy", replacing: ["q.npy": Array(npy(shape: [3, 37, 64]).dropLast(100))], message: "truncated"),
        standard("bad .npy header", replacing: ["q.npy": npy(header: "{'descr': '<f4', 'shape': [3, 37, 64]}", data: [])],
                 message: "bad .npy header: header has no 'fortran_order' field"),
        standard("not a .npy file", replacing: ["q.npy": Array("q,k,v\n1,2,3\n".utf8)], message: "missing the \\x93NUMPY magic"),
        standard("Fortran order", replacing: ["k.npy": npy(shape: [1, 37, 64], fortran: true)], message: "Fortran-order arrays are not supported"),
        standard("big-endian", replacing: ["v.npy": npy(descr: ">f4", shape: [1, 37, 64], elementBytes: 4)], message: "big-endian data"),
        standard("shape shorter than the data", replacing: ["q.npy": npy(header: shapeHeader("<f4", [3, 37, 63]), data: Array(repeating: 0, count: 3 * 37 * 64 * 4))],
                 message: "shape [3, 37, 63] needs 27972 data bytes but the file holds 28416"),
        standard("missing input file", replacing: [:], ["--q", "$D/nothing.npy"], message: "nothing.npy: no such file"),
        // outputs
        standard("output folder missing", ["--out", "$D/no/such/folder/out.npy"], message: "cannot be written (the folder"),
        standard("output is a folder", ["--out", "$D"], message: "cannot be written (it is a folder)"),
        standard("--indices-out is a file", ["--pattern", "vertical-slash", "--indices-out", "$D/q.npy"], message: "cannot use --indices-out"),
        // configs
        standard("config: malformed JSON", replacing: ["c.json": Array("[{\"0\": [\"vertical_and_slash\", 1000, 6096]".utf8)],
                 ["--config", "$D/c.json", "--layer", "0"], message: "malformed JSON"),
        standard("config: unknown pattern", replacing: ["c.json": config(heads: 3, pattern: "diagonal")],
                 ["--config", "$D/c.json", "--layer", "0"], message: "unknown pattern \"diagonal\""),
        standard("config: layer out of range", replacing: ["c.json": config(heads: 3)], ["--config", "$D/c.json", "--layer", "5"],
                 message: "layer 5 requested, but the config has 1 layers"),
        standard("config: head count mismatch", replacing: ["c.json": config(heads: 2)], ["--config", "$D/c.json", "--layer", "0"],
                 message: "the config has 2 heads, the model 3 query heads"),
        standard("config: negative budget", replacing: ["c.json": config(heads: 3, v: "-5")], ["--config", "$D/c.json", "--layer", "0"],
                 message: "budget v = -5 is not > 0"),
        standard("config: missing file", ["--config", "$D/none.json", "--layer", "0"], message: "no such pattern config file"),
        standard("config without --layer", replacing: ["c.json": config(heads: 3)], ["--config", "$D/c.json"], message: "--config needs --layer L"),
        // non-finite inputs, found by the default check with their position
        standard("NaN in q", replacing: ["q.npy": npy(shape: [3, 37, 64], poison: ((1 * 37 + 2) * 64 + 3, .nan))],
                 message: "q holds a non-finite value (nan) at index [1, 2, 3] (turn this check off with --no-check-finite)"),
        standard("infinity in v", replacing: ["v.npy": npy(shape: [1, 37, 64], dtype: .f16, poison: (36 * 64 + 63, -.infinity)),
                                             "q.npy": npy(shape: [3, 37, 64], dtype: .f16), "k.npy": npy(shape: [1, 37, 64], dtype: .f16)],
                 message: "v holds a non-finite value (-inf) at index [0, 36, 63]"),
        // the device refusing
        standard("unknown --device", ["--device", "no-such-device"], message: "no OpenCL device matches 'no-such-device'"),
        standard("over the memory limit", environment: ["MINFERENCECL_MEMORY_LIMIT": "20K"], message: "over the memory limit (20480 bytes)"),
        standard("malformed memory limit", environment: ["MINFERENCECL_MEMORY_LIMIT": "lots"], message: "MINFERENCECL_MEMORY_LIMIT=lots"),
        standard("kernel file missing", environment: ["MINFERENCECL_KERNELS_DIR": "/nonexistent-kernels", "MINFERENCECL_CACHE_DIR": "off"],
                 message: "kernel file dense_attention.cl not found in MINFERENCECL_KERNELS_DIR=/nonexistent-kernels"),
        // malformed command lines (ArgumentParser: exit 64)
        Case(name: "missing --v", files: standardFiles, arguments: ["--q", "$D/q.npy", "--k", "$D/k.npy", "--out", "$D/out.npy"],
             message: "Missing expected argument '--v <v>'", exitCode: 64),
        standard("non-numeric budget", ["--pattern", "a-shape", "--sink", "many"], message: "The value 'many' is invalid for '--sink <sink>'", exitCode: 64),
        // negative numbers are values, refused by each option's own rule
        standard("negative --layer", replacing: ["c.json": config(heads: 3)], ["--config", "$D/c.json", "--layer", "-1"],
                 message: "layer -1 requested, but the config has 1 layers"),
        standard("negative --scale", ["--scale", "-0.5"], message: "scale must be a positive finite number, got -0.5"),
        standard("negative --blocks", ["--pattern", "block-sparse", "--blocks", "-3"], message: "block-sparse blocks must be > 0, got -3"),
        standard("unknown option", ["--bogus"], message: "Unknown option '--bogus'", exitCode: 64),
    ]

    @Test(arguments: cases)
    func refusesWithOneLine(_ c: Case) throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli")
        defer { folder.remove() }
        for (name, bytes) in c.files { _ = try folder.write(name, bytes) }
        let arguments = ["attention"] + c.arguments.map { $0.replacingOccurrences(of: "$D", with: folder.path) }
        let result = try runProcess(tool, arguments, environment: c.environment, timeout: 60)
        #expect(!result.timedOut, "\(result)")
        #expect(result.status == c.exitCode, "\(result)")
        #expect(result.stderrLines.count == 1, "expected one line on stderr: \(result)")
        let line = result.stderrLines.first ?? ""
        #expect(line.hasPrefix("minference-cl: error: "), "\(line)")
        #expect(line.contains(c.message), "'\(line)' does not contain '\(c.message)'")
        #expect(!FileManager.default.fileExists(atPath: folder.file("out.npy")), "an output file was left behind")
    }

    @Test("A kernel that fails to build: the error line, then the build log, and exit 1")
    func buildFailureShowsLog() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-build")
        defer { folder.remove() }
        let kernels = folder.file("kernels")
        try FileManager.default.createDirectory(atPath: kernels, withIntermediateDirectories: true)
        for (name, text) in EmbeddedKernelsForTests.files {
            let broken = name == "dense_attention.cl" ? text + "\nthis is not OpenCL C;\n" : text
            try Data(broken.utf8).write(to: URL(fileURLWithPath: kernels + "/" + name))
        }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        let arguments = ["attention"] + Self.standardArguments.map { $0.replacingOccurrences(of: "$D", with: folder.path) }
        let result = try runProcess(tool, arguments, environment: ["MINFERENCECL_KERNELS_DIR": kernels, "MINFERENCECL_CACHE_DIR": "off"])
        #expect(result.status == 1, "\(result)")
        // The driver's compiler may print to stderr itself (PoCL: "2 errors generated."); ours is
        // one error line, then the build log indented.
        let lines = result.stderrLines
        let ours = lines.indices.filter { lines[$0].hasPrefix("minference-cl: ") }
        #expect(ours.count == 1, "\(result)")
        let at = ours.first ?? 0
        #expect(lines[at].hasPrefix("minference-cl: error: building dense_attention.cl for ") == true, "\(result)")
        #expect(lines[at].contains("failed with CL_BUILD_PROGRAM_FAILURE"), "\(result)")
        #expect(lines[(at + 1)...].contains { $0.hasPrefix("    ") && $0.contains("error") }, "\(result)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("out.npy")))
    }

    @Test("An f16 output that overflows: the file is written, and a warning gives the count")
    func f16OverflowIsReported() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-overflow")
        defer { folder.remove() }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        // v column 5 of every key at 1e5: each output row's column 5 is 1e5, above f16's 65504
        var values = try NPYFile.decode(Self.standardFiles["v.npy"]!).floats()
        for key in 0..<37 { values[key * 64 + 5] = 100_000 }
        _ = try folder.write("v.npy", Self.npy(header: Self.shapeHeader("<f4", [1, 37, 64]),
                                                data: try Tensor(shape: [1, 37, 64], dtype: .f32, values: values).bytes))
        let arguments = ["attention"] + Self.standardArguments.map { $0.replacingOccurrences(of: "$D", with: folder.path) }
        let f32 = try runProcess(tool, arguments)
        #expect(f32.status == 0 && !f32.stderr.contains("warning"), "\(f32)")
        let f16 = try runProcess(tool, arguments + ["--out-dtype", "f16"])
        #expect(f16.status == 0, "\(f16)")
        #expect(f16.stderrLines.contains("minference-cl: warning: 111 output value(s) are infinite: results above 65504, the largest f16; --out-dtype f32 keeps them finite"),
                "\(f16)")
        let written = try NPYFile.read(folder.file("out.npy"))
        #expect(written.dtype == .f16 && written.infinityCount() == 111)
    }

    @Test("demo --kernels keeps the kernel check, the recall and the approximation apart")
    func demoColumns() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let result = try runProcess(tool, ["demo", "--kernels", "--lengths", "640", "--heads", "2", "--kv-heads", "1", "--head-dim", "64", "--check-rows", "12"],
                                    timeout: 300)
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let header = lines.first { $0.contains("pattern") && $0.contains("check") } ?? ""
        for column in ["kernel vs float64 (its keys)", "check", "recall", "vs dense (approximation)"] {
            #expect(header.contains(column), "header: \(header)")
        }
        // one row for dense and one per pattern, each judged ok on the kernel check only
        let rows = lines.filter { $0.hasPrefix(" 640") || $0.hasPrefix("640") }
        #expect(rows.count == 4, "\(result)")
        for row in rows { #expect(row.contains(" ok "), "\(row)") }
    }

    /// `minference-cl attention` on the folder's q.npy, k.npy and v.npy with `extra` options; expects
    /// a clean exit and returns the output written to `out`.
    static func attention(tool: String, folder: TemporaryFolder, _ extra: [String], out: String) throws -> [Float] {
        let arguments = ["attention", "--q", folder.file("q.npy"), "--k", folder.file("k.npy"), "--v", folder.file("v.npy"),
                         "--out", folder.file(out)] + extra
        let result = try runProcess(tool, arguments)
        #expect(result.status == 0 && result.stderr.isEmpty, "\(extra): \(result)")
        return try NPYFile.read(folder.file(out)).floats()
    }

    @Test("Budgets larger than N are clamped: every sparse pattern then equals dense")
    func budgetsAboveLengthAreClamped() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-clamp")
        defer { folder.remove() }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        func run(_ extra: [String], out: String) throws -> [Float] { try Self.attention(tool: tool, folder: folder, extra, out: out) }
        let dense = try run(["--pattern", "dense"], out: "dense.npy")
        for extra in [["--pattern", "a-shape", "--sink", "1000000", "--window", "2147483647"],
                      ["--pattern", "vertical-slash", "--vertical", "1000000", "--slash", "1000000"],
                      ["--pattern", "block-sparse", "--blocks", "2147483647"]] {
            let sparse = try run(extra, out: "sparse.npy")
            let worst = zip(dense, sparse).map { abs($0 - $1) }.max() ?? .infinity
            #expect(sparse.count == dense.count && worst <= 1e-5, "\(extra): max difference \(worst) from dense")
        }
    }

    @Test("A chunk (Nq < Nk, queries at the end) runs with every pattern; with covering budgets each equals dense")
    func chunksRunWithEveryPattern() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-chunk")
        defer { folder.remove() }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        _ = try folder.write("q.npy", Self.npy(shape: [3, 20, 64]))
        func run(_ extra: [String], out: String) throws -> [Float] { try Self.attention(tool: tool, folder: folder, extra, out: out) }
        let dense = try run(["--pattern", "dense"], out: "dense.npy")
        #expect(dense.count == 3 * 20 * 64)
        for extra in [["--pattern", "a-shape", "--sink", "64", "--window", "64"],
                      ["--pattern", "vertical-slash", "--vertical", "64", "--slash", "64"],
                      ["--pattern", "block-sparse", "--blocks", "2"]] {
            let sparse = try run(extra + ["--dense-fallback", "never"], out: "sparse.npy")
            let worst = zip(dense, sparse).map { abs($0 - $1) }.max() ?? .infinity
            #expect(sparse.count == dense.count && worst <= 1e-5, "\(extra): max difference \(worst) from dense")
        }
    }

    @Test("--no-check-finite turns the check off: the row that reads the NaN is NaN, other rows unchanged")
    func finiteCheckCanBeTurnedOff() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-nocheck")
        defer { folder.remove() }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        let clean = ["attention"] + Self.standardArguments.map { $0.replacingOccurrences(of: "$D", with: folder.path) }
        let first = try runProcess(tool, clean)
        #expect(first.status == 0, "\(first)")
        let reference = try NPYFile.read(folder.file("out.npy")).floats()
        _ = try folder.write("q.npy", Self.npy(shape: [3, 37, 64], poison: ((1 * 37 + 2) * 64 + 3, .nan)))
        let result = try runProcess(tool, clean + ["--no-check-finite"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        let out = try NPYFile.read(folder.file("out.npy")).floats()
        // Only row 2 of head 1 read the NaN (in its query): that row is NaN, every other row is
        // bit for bit the clean run's.
        let row = (1 * 37 + 2) * 64
        #expect(out.count == reference.count)
        #expect(out[row..<row + 64].allSatisfy { $0.isNaN }, "\(out[row..<row + 64])")
        #expect(Array(out[..<row]) == Array(reference[..<row]) && Array(out[(row + 64)...]) == Array(reference[(row + 64)...]))
    }

    @Test("A failed final write removes the index files the run wrote")
    func failedWriteLeavesNoIndexFiles() throws {
        let tool = try BuiltExecutable.path("minference-cl")
        let folder = try TemporaryFolder("cli-rollback")
        defer { folder.remove() }
        for (name, bytes) in Self.standardFiles { _ = try folder.write(name, bytes) }
        // /proc passes the early check when running as root (root may write any folder) and
        // then refuses the file; otherwise the early check refuses it. Either way: no files.
        let arguments = ["attention", "--q", folder.file("q.npy"), "--k", folder.file("k.npy"), "--v", folder.file("v.npy"),
                         "--out", "/proc/minference-out.npy", "--pattern", "vertical-slash", "--indices-out", folder.file("indices")]
        let result = try runProcess(tool, arguments)
        #expect(result.status == 1 && result.stderrLines.count == 1, "\(result)")
        #expect(result.stderrLines.first?.contains("/proc/minference-out.npy: cannot be written") == true, "\(result)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: folder.file("indices"))) ?? []
        #expect(left.isEmpty, "files left behind: \(left)")
    }
}

extension CommandLineTests {
    /// A valid .npy of seeded random values, with one element replaced by `poison`.
    static func npy(shape: [Int], dtype: DType = .f32, fortran: Bool = false, poison: (index: Int, value: Float)? = nil) -> [UInt8] {
        var random = SeededRandom(seed: UInt64(shape.reduce(7, *)))
        var values = random.normals(shape.reduce(1, *))
        if let poison { values[poison.index] = poison.value }
        // A shape and values that match by construction: a static fixture, built before any test runs.
        guard let bytes = try? Tensor(shape: shape, dtype: dtype, values: values).bytes else { return [] }
        let descr = dtype == .f32 ? "<f4" : "<f2"
        var header = shapeHeader(descr, shape)
        if fortran { header = header.replacingOccurrences(of: "False", with: "True") }
        return npy(header: header, data: bytes)
    }

    /// A .npy whose data is `elementBytes` zero bytes per element.
    static func npy(descr: String, shape: [Int], elementBytes: Int) -> [UInt8] {
        npy(header: shapeHeader(descr, shape), data: Array(repeating: 0, count: shape.reduce(1, *) * elementBytes))
    }

    static func shapeHeader(_ descr: String, _ shape: [Int]) -> String {
        let tuple = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        return "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(tuple), }"
    }

    /// Magic, version 1.0, the header padded to 64 bytes, then `data`.
    static func npy(header: String, data: [UInt8]) -> [UInt8] {
        var text = header
        let unpadded = 10 + text.utf8.count + 1
        text += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = text.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(text.utf8) + data
    }

    /// A one-layer config of `heads` heads.
    static func config(heads: Int, pattern: String = "vertical_and_slash", v: String = "1000") -> [UInt8] {
        let entries = (0..<heads).map { "\"\($0)\": [\"\(pattern)\", \(v), 6096, 0.5]" }
        return Array(("[{" + entries.joined(separator: ", ") + "}]\n").utf8)
    }
}
