//! Throwaway certificates for TLS tests, made by the `openssl` command.

use std::path::Path;
use std::process::Command;

/// Throwaway certificates: a CA (`ca`), the agent's certificate (`server`,
/// for localhost and 127.0.0.1), and whatever a test adds.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    pub fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki.leaf("server", "/O=Fjord/CN=localhost", "ca", 1);
        pki
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    pub fn ca(&self, name: &str) {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-noenc",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "3650",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// `<name>.pem` and `<name>.key`: a certificate for `subject` signed by
    /// `ca`, good for servers and clients, for localhost and 127.0.0.1.
    pub fn leaf(&self, name: &str, subject: &str, ca: &str, serial: u32) {
        std::fs::write(
            self.dir.path().join("ext.cnf"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-noenc",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
                "-out",
                &cert,
            ],
        );
    }
}
