import Foundation
import MInferenceCL
import Testing

/// The inputs libFuzzer found (scripts/fuzz/run.sh), replayed: each must decode or throw the
/// reader's typed error, quickly, and a decoded value must re-encode to itself. The files named
/// crash-* and timeout-* reproduce the two bugs the fuzzer found (an Int overflow trap in the
/// .npy shape, a near-endless loop over a config's head indices).
@Suite("Fuzz corpus regressions", .timeLimit(.minutes(1)))
struct FuzzCorpusTests {
    static func files(_ kind: String) -> [String] {
        let folder = fixturePath("fuzz-corpus/" + kind)
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted().map { folder + "/" + $0 }
    }

    @Test("Every .npy input decodes or throws TensorFileError")
    func npyCorpus() throws {
        let files = Self.files("npy")
        #expect(files.count >= 40, "the corpus is missing: \(files.count) files")
        var decoded = 0
        let clock = ContinuousClock()
        for path in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            for bf16 in [false, true] {
                let started = clock.now
                do {
                    let tensor = try NPYFile.decode(bytes, path: path, bf16: bf16)
                    decoded += 1
                    let again = try NPYFile.decode(NPYFile.encode(tensor), bf16: true)
                    #expect(again.shape == tensor.shape && again.bytes == tensor.bytes, "\(path)")
                    _ = tensor.firstNonFinite()
                } catch is TensorFileError {
                } catch {
                    Issue.record("\(path): untyped error \(error)")
                }
                #expect(clock.now - started < .seconds(1), "\(path) took \(clock.now - started)")
            }
        }
        #expect(decoded > 0)
        let crash = try #require(files.first { $0.contains("crash-shape-overflow") })
        #expect(throws: TensorFileError.self) { try NPYFile.read(crash) }
    }

    @Test("Every config input loads or throws PatternConfigError")
    func configCorpus() throws {
        let files = Self.files("config")
        #expect(files.count >= 80, "the corpus is missing: \(files.count) files")
        var loaded = 0
        let clock = ContinuousClock()
        for path in files {
            let started = clock.now
            do {
                let config = try PatternConfig.load(path: path)
                loaded += 1
                for pattern in config.layers.joined() { try pattern.validate() }
                if let bytes = try? config.encoded() {
                    #expect(try PatternConfig.decode(bytes, source: "re-encoded").layers == config.layers, "\(path)")
                }
            } catch is PatternConfigError {
            } catch {
                Issue.record("\(path): untyped error \(error)")
            }
            #expect(clock.now - started < .seconds(1), "\(path) took \(clock.now - started)")
        }
        #expect(loaded > 0)
        let timeout = try #require(files.first { $0.contains("timeout-huge-head-key") })
        #expect(throws: PatternConfigError.badHeadKey(source: timeout, layer: 0, key: "338734338769")) { try PatternConfig.load(path: timeout) }
    }
}
